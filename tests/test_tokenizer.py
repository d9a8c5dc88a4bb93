import os
import subprocess
import sys


def test_known_ids(tokenizer):
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tokenizer.model_max_length == 77
    assert len(tokenizer.get_vocab()) == 49408


def test_multi_token_words(tokenizer):
    assert tokenizer.tokenize("jellybeans") == ["jelly", "beans</w>"]
    assert tokenizer.tokenize("tabby") == ["tabby</w>"]


def test_loads_offline_in_a_fresh_process():
    code = "from p2p_widgets import load_tokenizer; print(load_tokenizer()('a cat').input_ids)"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[49406, 320, 2368, 49407]"


def test_import_does_not_load_torch():
    code = "import sys, p2p_widgets; print('torch' in sys.modules, 'diffusers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
