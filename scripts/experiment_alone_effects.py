"""Experiment (docs/explanations.md, "Tried this round"): do the keep-alone and drop-one margins of
the search's final parts improve the ranking key?

For each clip: the default explanation (its paired search captured), then every final part queried
alone (everything else removed) and dropped alone, under zero masking and noise fill (extra queries:
an experiment, not equal-query); keys = log-energy + weight x standardised effects of those margins,
scored by deletion / insertion curves beside magnitude and the default key. One JSON line a clip.

    python scripts/experiment_alone_effects.py START N MODEL OUT.jsonl
    python scripts/experiment_alone_effects.py 17 5 madmom_key docs/results/margin-tuning-key-alone.jsonl
"""
import json, os, sys, time
import numpy as np
import freqrex
from freqrex import explainer, quality
from freqrex.io import load_audio
from freqrex.models import load_model
from freqrex.margin.search import margin_of, mask_key, _standardised as z
from freqrex.margin.tree import leaf_index

corpus = os.environ.get("FREQREX_CORPUS", "/tmp/freqrex-corpus")
names = [l.strip() for l in open(f"{corpus}/order.txt") if l.strip()]
start, n, model_name, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
model = load_model(model_name)
done = {json.loads(l)["clip"] for l in open(out)} if os.path.exists(out) else set()
for name in names[start - 1:start - 1 + n]:
    if name in done:
        continue
    t = time.time()
    audio, sr = load_audio(name, sample_rate=model.sample_rate, duration=30.0)
    x = audio.astype(np.float64)
    got = []
    real = explainer.margin_search
    def patched(space, evaluate, **kw):
        f = real(space, evaluate, **kw); got.append((f, kw)); return f
    explainer.margin_search = patched
    try:
        e = freqrex.explain(audio, sr, model, seed=0)
    finally:
        explainer.margin_search = real
    f, kw = got[0]
    target = e.target
    X = np.fft.rfft(x); energy = (np.abs(X) ** 2)[None, :]
    n_bins = X.size
    idx = leaf_index(f.leaves, 1, n_bins)
    m = len(f.leaves)
    fill = quality.noise_fill(x, seed=1)
    # alone and drop masks per final leaf; query both channels (experiment: extra queries)
    masks = []
    for i in range(m):
        a = np.zeros(m + 1, dtype=bool); a[i] = True; a[m] = True
        d = np.ones(m + 1, dtype=bool); d[i] = False
        masks += [a[idx][0], d[idx][0]]
    masks = np.stack(masks)
    zero_w = quality._noise_waves(x, masks, np.zeros_like(fill))  # removed bins zeroed
    fill_w = quality._noise_waves(x, masks, fill)  # removed bins noise-filled
    S0 = np.concatenate([np.asarray(model(zero_w[i:i+16]), dtype=np.float64) for i in range(0, len(masks), 16)])
    S1 = np.concatenate([np.asarray(model(fill_w[i:i+16]), dtype=np.float64) for i in range(0, len(masks), 16)])
    s_empty0 = np.asarray(model(np.zeros((1, x.size), np.float32)), dtype=np.float64)
    s_empty1 = np.asarray(model(np.fft.irfft(fill, n=x.size)[None].astype(np.float32)), dtype=np.float64)
    full = margin_of(np.asarray(model(audio[None].astype(np.float32)), dtype=np.float64), target)[0]
    m0a, m0d = margin_of(S0[0::2], target), margin_of(S0[1::2], target)
    m1a, m1d = margin_of(S1[0::2], target), margin_of(S1[1::2], target)
    e0, e1 = margin_of(s_empty0, target)[0], margin_of(s_empty1, target)[0]
    alone0, alone1 = m0a - e0, m1a - e1
    drop0, drop1 = full - m0d, full - m1d
    logE = np.log10(energy.ravel() + 1e-30)
    def cells(v):
        return np.where(idx.ravel() >= 0, np.append(v, 0.0)[idx.ravel()], 0.0)
    reg = z(f.effects) + z(f.fill_effects)
    keys = {"magnitude": logE, "default": logE + 0.125 * cells(reg)}
    al = z(alone0) + z(alone1); dr = z(drop0) + z(drop1)
    for w in (0.125, 0.25):
        keys[f"alone:{w:g}"] = logE + w * cells(al)
        keys[f"regalone:{w:g}"] = logE + 0.125 * cells(reg) + w * cells(al)
    keys["alonedrop:0.125"] = logE + 0.125 * cells(al + dr)
    rec = {"clip": name, "model": model_name, "target": int(target), "leaves": m, "queries": int(e.queries), "curves": {}}
    for k, key in keys.items():
        cellsidx = np.arange(n_bins)
        r = cellsidx[np.lexsort((cellsidx, -key))]
        for op in ("zero", "noise"):
            c = quality.ranking_curves(audio, sr, model, r, target=target, operator=op)
            rec["curves"][f"{k}|{op}"] = [c.deletion_auc, c.insertion_auc]
    with open(out, "a") as fh:
        fh.write(json.dumps(rec) + "\n")
    print(os.path.basename(name), m, f"{time.time()-t:.0f}s", flush=True)
