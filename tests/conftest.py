import pytest


@pytest.fixture(scope="session")
def tokenizer():
    from p2p_widgets.engine.tokenizer import load_tokenizer

    return load_tokenizer()


@pytest.fixture(scope="session")
def tiny_pipe():
    from p2p_widgets.bench.geometries import tiny_pipeline

    return tiny_pipeline(seed=0)


@pytest.fixture(scope="session")
def editor(tiny_pipe):
    from p2p_widgets.engine.sampler import Editor

    return Editor(tiny_pipe)
