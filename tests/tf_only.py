"""Runs code in a fresh Python process that can import tensorflow but not keras, keras_hub, tensorflow_text or zoo,
as TensorFlow Serving would load a model."""

import json
import os
import subprocess
import sys
import textwrap

BLOCK = "import sys\nfor _m in ('keras', 'keras_hub', 'keras_nlp', 'tensorflow_text', 'zoo'):\n    sys.modules[_m] = None\n"


def run_tf_only(code, timeout=300):
    """Runs `code` (which prints one JSON line last) and returns the parsed JSON."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ""}
    result = subprocess.run([sys.executable, "-c", BLOCK + textwrap.dedent(code)], capture_output=True, text=True,
                            env=env, timeout=timeout, cwd="/")
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
