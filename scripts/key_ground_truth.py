"""Ground truth on a real model: explain madmom's key CNN on MIDI rendered in known keys.

Issue 16 ("Explanations you can trust"), evaluation piece "ground truth". For every
clip this script

1. writes a MIDI file in a known key (``mido``): a I-IV-V-I chord progression
   (minor keys: i-iv-V-i, harmonic minor) or an ascending/descending scale, on
   piano or a second General MIDI instrument (string ensemble), 30 s, at a few
   tempos, some with a drum kit (loud energy off the scale partials);
2. renders it with fluidsynth at 16 kHz
   (``fluidsynth -ni -g 0.3 -r 16000 -F out.wav TimGM6mb.sf2 in.mid``);
3. runs the key CNN (``freqrex.models.load_model("madmom_key")``) and records
   its decision (and whether it is the key written);
4. explains the decision with ``freqrex.explain(audio, 16000, model, seed=0)``
   (the defaults: ``rule="margin"``, at most 400 queries);
5. measures which share of the sufficient set's energy (and of the
   responsibility's positive mass) lies on the key's **scale partials**, against
   chance (the clip's own energy share on them; a random set of as many bins)
   and against the top-|X| magnitude set of the same size.

Scale partials
--------------
The bins within ``TOL_CENTS`` (25 cents, a quarter semitone) of the equal-
tempered pitches whose pitch class is in the key's scale (major; harmonic
minor, the scale the minor clips are written in), between ``FMIN`` and
``FMAX`` (65-2100 Hz, the CNN's filterbank). These are the octave partials
(harmonics 1, 2, 4, 8) of the scale's notes, the chroma every key-finding
method reads. 25 cents is half the distance to the next semitone: a bin is
on a scale pitch when it is nearer to it than to the midpoint of the
neighbouring semitone, so the mask covers 7/12 x 1/2 = 29% of the log-frequency
axis whatever the key, and piano inharmonicity (a few cents on the partials
below 2.1 kHz) stays inside it. A second mask, ``harmonics``, takes harmonics
1-6 of every scale note from 32.7 Hz (C1) up (3 and 6 land on fifths, 5 on
major thirds, 14 cents flat), also within 25 cents. As a control the same share
is measured on the scale of the key a tritone away (2 pitch classes in common
with a major key), which should be *lower* for a set that reads the key.

Shares are of energy (|X|^2 of the clip's rfft bins) over the whole set; the
share of the set's energy inside the CNN's range (65-2100 Hz) is reported too.

Run (about 1-2 minutes a clip on a loaded 2-core machine)::

    python scripts/key_ground_truth.py --out docs/results/key-ground-truth.jsonl

``--limit N`` runs the first N clips; ``--work DIR`` keeps the MIDI and WAV files.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

SAMPLE_RATE = 16000
DURATION = 30.0
SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"
FMIN, FMAX = 65.0, 2100.0
TOL_CENTS = 25.0
PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MAJOR = (0, 2, 4, 5, 7, 9, 11)
HARMONIC_MINOR = (0, 2, 3, 5, 7, 8, 11)
#: General MIDI programs (0-based): acoustic grand piano and string ensemble 1.
INSTRUMENTS = {"piano": 0, "strings": 48}
SEEDS_RANDOM = 0
#: Random sets drawn per clip (their shares are averaged).
RANDOM_DRAWS = 20
#: Sufficient sets of at most this many bins have their frequencies recorded.
SMALL_SET = 20


def key_label(tonic: int, mode: str) -> str:
    """The key in madmom's spelling (``KEY_LABELS``)."""
    from freqrex.models.madmom_key import KEY_LABELS

    major = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
    minor = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "Bb", "B")
    name = f"{(major if mode == 'major' else minor)[tonic]} {mode}"
    if name not in KEY_LABELS:
        raise ValueError(name)
    return name


def scale_pcs(tonic: int, mode: str) -> list:
    steps = MAJOR if mode == "major" else HARMONIC_MINOR
    return sorted((tonic + s) % 12 for s in steps)


def _chords(tonic_note: int, mode: str) -> list:
    """I-IV-V-I (minor: i-iv-V-i) as MIDI note lists, close voicing with the root in the bass."""
    third = 4 if mode == "major" else 3
    out = []
    for degree, quality in ((0, third), (5, third), (7, 4), (0, third)):
        root = tonic_note + degree
        bass = root - 12
        out.append([bass, root, root + quality, root + 7])
    return out


def _scale_notes(tonic_note: int, mode: str) -> list:
    steps = MAJOR if mode == "major" else HARMONIC_MINOR
    up = [tonic_note + s for s in steps] + [tonic_note + 12]
    return up + up[-2:0:-1]


def write_midi(path: str, *, tonic: int, mode: str, kind: str, instrument: str, bpm: float,
               drums: bool = False) -> None:
    """A 30 s MIDI file in the key: the progression or the scale, repeated; ``drums`` adds a
    second track on the General MIDI drum channel (kick on beats 1 and 3, snare on 2 and 4,
    closed hi-hat on every half beat)."""
    import mido

    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    track.append(mido.Message("program_change", program=INSTRUMENTS[instrument], channel=0, time=0))
    tonic_note = 60 + tonic if tonic < 6 else 48 + tonic  # tonic between F#3 and F4
    beats_total = int(DURATION * bpm / 60.0)
    if kind == "progression":
        events = [(chord, 2) for chord in _chords(tonic_note, mode)]  # two beats a chord
    else:
        events = [([n], 1) for n in _scale_notes(tonic_note, mode)]  # one beat a note
    beats, pending = 0, 0
    i = 0
    while beats < beats_total:
        notes, length = events[i % len(events)]
        length = min(length, beats_total - beats)
        for j, n in enumerate(notes):
            track.append(mido.Message("note_on", note=n, velocity=80, channel=0, time=pending if j == 0 else 0))
        pending = 0
        ticks = length * 480
        for j, n in enumerate(notes):
            track.append(mido.Message("note_off", note=n, velocity=0, channel=0, time=ticks if j == 0 else 0))
        beats += length
        i += 1
    if drums:
        kit = mido.MidiTrack()
        mid.tracks.append(kit)
        for half in range(2 * beats_total):
            notes = [42] + ([36] if half % 4 == 0 else [38] if half % 4 == 2 else [])
            for n in notes:
                kit.append(mido.Message("note_on", note=n, velocity=100, channel=9, time=0))
            for j, n in enumerate(notes):
                kit.append(mido.Message("note_off", note=n, velocity=0, channel=9, time=240 if j == 0 else 0))
    mid.save(path)


def render(midi: str, wav: str) -> list:
    cmd = ["fluidsynth", "-ni", "-g", "0.3", "-r", str(SAMPLE_RATE), "-F", wav, SOUNDFONT, midi]
    subprocess.run(cmd, check=True, capture_output=True)
    return cmd


def clip_plan() -> list:
    """The clips: 12 major progressions (piano and strings alternating, 3 tempos; a General MIDI
    drum kit on every third), 4 minor progressions (drums on two), 2 scales (one major, one minor).
    The drums put loud energy off the scale partials: a ranking by magnitude picks it up, an
    explanation of the key should not."""
    plan = []
    tempos = (80, 100, 120)
    for t in range(12):
        plan.append(dict(tonic=t, mode="major", kind="progression", instrument="piano" if t % 2 == 0 else "strings",
                         bpm=tempos[t % 3], drums=t % 3 == 2))
    for t, inst, drums in ((9, "piano", False), (4, "strings", True), (2, "piano", True), (7, "strings", False)):
        plan.append(dict(tonic=t, mode="minor", kind="progression", instrument=inst, bpm=90, drums=drums))
    for t, mode, inst in ((7, "major", "piano"), (9, "minor", "strings")):
        plan.append(dict(tonic=t, mode=mode, kind="scale", instrument=inst, bpm=110, drums=False))
    return plan


def _cents_mask(freqs: np.ndarray, targets: np.ndarray, tol_cents: float) -> np.ndarray:
    """Bins whose frequency is within tol_cents of any target frequency."""
    targets = np.sort(targets)
    out = np.zeros(freqs.size, dtype=bool)
    pos = freqs > 0
    f = freqs[pos]
    idx = np.searchsorted(targets, f)
    best = np.full(f.size, np.inf)
    for j in (idx - 1, idx):
        ok = (j >= 0) & (j < targets.size)
        c = np.full(f.size, np.inf)
        c[ok] = np.abs(1200 * np.log2(f[ok] / targets[j[ok]]))
        best = np.minimum(best, c)
    out[pos] = best <= tol_cents
    return out


def partial_masks(freqs: np.ndarray, pcs: list) -> dict:
    """Boolean masks over the rfft bins: the scale's pitches and harmonics 1-6 of its notes."""
    notes = np.arange(0, 128)
    f0 = 440.0 * 2.0 ** ((notes - 69) / 12.0)
    in_scale = np.isin(notes % 12, pcs)
    in_range = (freqs >= FMIN) & (freqs <= FMAX)
    pitches = _cents_mask(freqs, f0[in_scale], TOL_CENTS) & in_range
    base = f0[in_scale & (f0 >= 32.7)]
    harm = np.concatenate([base * h for h in range(1, 7)])
    harmonics = _cents_mask(freqs, harm[harm <= FMAX * 1.02], TOL_CENTS) & in_range
    return {"pitches": pitches, "harmonics": harmonics, "range": in_range}


def shares(weights: np.ndarray, masks: dict, control: dict) -> dict:
    """Share of ``weights`` (energy or positive mass) on each mask."""
    total = float(weights.sum())
    if total <= 0:
        return {k: None for k in ("pitches", "harmonics", "control_pitches", "in_range")}
    return {
        "pitches": float(weights[masks["pitches"]].sum() / total),
        "harmonics": float(weights[masks["harmonics"]].sum() / total),
        "control_pitches": float(weights[control["pitches"]].sum() / total),
        "in_range": float(weights[masks["range"]].sum() / total),
    }


def measure(audio: np.ndarray, explanation, pcs: list, control_pcs: list, seed: int = SEEDS_RANDOM) -> dict:
    energy = np.abs(np.fft.rfft(audio.astype(np.float64))) ** 2
    freqs = np.arange(energy.size) * (SAMPLE_RATE / audio.size)
    masks = partial_masks(freqs, pcs)
    control = partial_masks(freqs, control_pcs)
    suff = explanation.sufficient
    out = {"bins_share_of_range": {k: float(masks[k].sum() / masks["range"].sum()) for k in ("pitches", "harmonics")},
           "clip_energy": shares(energy, masks, control)}
    if suff is None:
        out["sufficient"] = None
        return out
    suff = np.asarray(suff).reshape(-1)
    k = int(suff.sum())
    out["sufficient_size"] = k
    out["sufficient_bins_share"] = k / suff.size
    out["sufficient"] = shares(np.where(suff, energy, 0.0), masks, control)
    if k <= SMALL_SET:  # a handful of bins: say which
        out["sufficient_hz"] = [float(f) for f in freqs[suff]]
    resp = np.asarray(explanation.responsibility, dtype=np.float64).reshape(-1)
    out["responsibility_positive"] = shares(np.clip(resp, 0, None), masks, control)
    top = np.argsort(-energy, kind="stable")[:k]
    mag = np.zeros(energy.size, dtype=bool)
    mag[top] = True
    out["magnitude_top"] = shares(np.where(mag, energy, 0.0), masks, control)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(RANDOM_DRAWS):
        rand = np.zeros(energy.size, dtype=bool)
        rand[rng.choice(energy.size, size=k, replace=False)] = True
        draws.append(shares(np.where(rand, energy, 0.0), masks, control))
    out["random_set"] = {key: float(np.mean([d[key] for d in draws])) for key in draws[0]}
    # unweighted: which share of the set's bins inside 65-2100 Hz lie on the scale's pitches
    for name, m in (("sufficient", suff), ("magnitude_top", mag)):
        inside = m & masks["range"]
        out[name + "_bins_in_range"] = int(inside.sum())
        out[name + "_bins_on_pitches"] = float((m & masks["pitches"]).sum() / max(int(inside.sum()), 1))
    return out


def run_clip(spec: dict, model, work: str) -> dict:
    import soundfile as sf

    import freqrex
    from freqrex.models.madmom_key import KEY_LABELS

    name = (f"{PITCH_NAMES[spec['tonic']]}-{spec['mode']}-{spec['kind']}-{spec['instrument']}-{spec['bpm']}"
            + ("-drums" if spec.get("drums") else ""))
    midi = os.path.join(work, name + ".mid")
    wav = os.path.join(work, name + ".wav")
    write_midi(midi, **spec)
    render_cmd = render(midi, wav)
    x, sr = sf.read(wav, dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    n = int(DURATION * SAMPLE_RATE)
    x = np.pad(x[:n], (0, max(0, n - x.shape[0])))
    assert sr == SAMPLE_RATE
    label = key_label(spec["tonic"], spec["mode"])
    scores = np.asarray(model(x[None, :]))[0]
    decision = int(np.argmax(scores))
    rec = {"clip": name, **spec, "key": label, "decision": KEY_LABELS[decision],
           "correct": KEY_LABELS[decision] == label, "score": float(scores[decision]),
           "render": " ".join(render_cmd[:-2] + [os.path.basename(render_cmd[-2]), os.path.basename(midi)])}
    # the measure is about the model's decision: explain it (right or wrong) with the scale of the
    # key it decided, and of the key written
    t = time.perf_counter()
    e = freqrex.explain(x, SAMPLE_RATE, model, seed=0)
    rec["explain_seconds"] = time.perf_counter() - t
    rec["queries"] = int(e.queries)
    rec["warnings"] = list(e.warnings or [])
    rec["set_margins"] = {k: v for k, v in (e.set_margins or {}).items()}
    decided = _parse_key(KEY_LABELS[decision])
    pcs = scale_pcs(*decided)
    control = scale_pcs((decided[0] + 6) % 12, decided[1])
    rec["scale_pcs"] = [PITCH_NAMES[p] for p in pcs]
    rec["control_pcs"] = [PITCH_NAMES[p] for p in control]
    rec.update(measure(x, e, pcs, control))
    return rec


def _parse_key(label: str) -> tuple:
    root, mode = label.split()
    names = {"C": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "F": 5, "F#": 6, "G": 7, "G#": 8,
             "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11}
    return names[root], mode


def summarize(path: str) -> str:
    """A Markdown table of the records in ``path``: per clip, then medians over the clips."""
    recs = [json.loads(line) for line in open(path) if line.strip()]
    cols = [("set", lambda r: r["sufficient"]["pitches"]), ("|X| top", lambda r: r["magnitude_top"]["pitches"]),
            ("random", lambda r: r["random_set"]["pitches"]), ("clip", lambda r: r["clip_energy"]["pitches"]),
            ("resp+", lambda r: r["responsibility_positive"]["pitches"]),
            ("set harm.", lambda r: r["sufficient"]["harmonics"]), ("clip harm.", lambda r: r["clip_energy"]["harmonics"]),
            ("set ctrl", lambda r: r["sufficient"]["control_pitches"]),
            ("|X| ctrl", lambda r: r["magnitude_top"]["control_pitches"]),
            ("set bins on", lambda r: r["sufficient_bins_on_pitches"]),
            ("|X| bins on", lambda r: r["magnitude_top_bins_on_pitches"]),
            ("resp+ in range", lambda r: r["responsibility_positive"]["in_range"]),
            ("resp+ on, of in range", lambda r: r["responsibility_positive"]["pitches"]
             / max(r["responsibility_positive"]["in_range"], 1e-12))]
    head = ["clip", "decision", "set size"] + [c for c, _ in cols] + ["kept margin", "queries"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ok = [r for r in recs if r.get("sufficient")]
    for r in recs:
        if not r.get("sufficient"):
            lines.append(f"| {r['clip']} | {r['decision']} | no set | " + " | ".join("" for _ in cols) + " | | |")
            continue
        mark = "" if r["correct"] else " (wrong)"
        m = (r.get("set_margins") or {}).get("sufficient", {}).get("kept_margin")
        size = (f"{r['sufficient_size']} bins" if r["sufficient_size"] < 100
                else f"{r['sufficient_bins_share'] * 100:.2f}%")
        lines.append(f"| {r['clip']} | {r['decision']}{mark} | {size} | "
                     + " | ".join(f"{f(r):.3f}" for _, f in cols)
                     + f" | {'' if m is None else f'{m:.3f}'} | {r['queries']} |")
    right = [r for r in ok if r["correct"]]
    for label, group in ((f"**median** ({len(ok)} clips)", ok), (f"median, the {len(right)} decided right", right)):
        if not group:
            continue
        med = [float(np.median([f(r) for r in group])) for _, f in cols]
        size = float(np.median([r["sufficient_bins_share"] for r in group]))
        margin = float(np.median([(r.get("set_margins") or {}).get("sufficient", {}).get("kept_margin", np.nan)
                                  for r in group]))
        lines.append(f"| {label} | {sum(r['correct'] for r in group)}/{len(group)} right | {size * 100:.2f}% | "
                     + " | ".join(f"**{v:.3f}**" for v in med) + f" | {margin:.3f} | "
                     + f"{int(np.median([r['queries'] for r in group]))} |")
    share = cols[0][1]
    wins = {c: sum(share(r) > g(r) for r in ok) for c, g in cols[1:4]}
    lines.append("")
    lines.append("clips where the sufficient set's energy share on the scale pitches is above that of: "
                 + ", ".join(f"{c} {w}/{len(ok)}" for c, w in wins.items())
                 + "; positive responsibility above the clip's energy: "
                 + f"{sum(r['responsibility_positive']['pitches'] > r['clip_energy']['pitches'] for r in ok)}/{len(ok)}"
                 + f"; clips with drums: {sum(bool(r.get('drums')) for r in ok)}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="docs/results/key-ground-truth.jsonl")
    ap.add_argument("--work", default=None, help="folder for the MIDI and WAV files (default: temporary)")
    ap.add_argument("--limit", type=int, default=None, help="run the first N clips of the plan")
    ap.add_argument("--skip", type=int, default=0, help="skip the first N clips (append to --out)")
    ap.add_argument("--summarize", action="store_true", help="print the table of --out's records and exit")
    args = ap.parse_args(argv)
    if args.summarize:
        print(summarize(args.out))
        return 0
    from freqrex.models import load_model

    model = load_model("madmom_key")
    work = args.work or tempfile.mkdtemp(prefix="keygt-")
    os.makedirs(work, exist_ok=True)
    plan = clip_plan()[args.skip:]
    if args.limit is not None:
        plan = plan[:args.limit]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    mode = "a" if args.skip else "w"
    with open(args.out, mode) as fh:
        for spec in plan:
            rec = run_clip(spec, model, work)
            fh.write(json.dumps(rec, sort_keys=True) + "\n")
            fh.flush()
            s, c = rec.get("sufficient") or {}, rec["clip_energy"]
            print(f"{rec['clip']}: {rec['decision']} ({'right' if rec['correct'] else 'WRONG'}), "
                  f"{rec['queries']} queries, {rec['explain_seconds']:.0f} s; suff {rec.get('sufficient_bins_share', 0):.4f} "
                  f"of bins, on scale pitches {s.get('pitches')} vs clip {c['pitches']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
