"""`import freqrex` stays light: no torch, onnxruntime or matplotlib until asked for."""

import subprocess
import sys


def test_import_is_light():
    code = (
        "import sys, freqrex, freqrex.models, freqrex.io, freqrex.reference;"
        "heavy = [m for m in ('torch', 'onnxruntime', 'matplotlib') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_api():
    import freqrex

    for name in ("explain", "Explainer", "Explanation", "ParameterError", "ModelError", "FreqrexError", "__version__"):
        assert hasattr(freqrex, name)
    from freqrex import reference

    assert callable(reference.explain)
