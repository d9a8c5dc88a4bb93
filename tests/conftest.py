import os

import pytest

# Tests whose parameters are each a work unit of their own under `-n N --dist loadfile` (every other
# test stays with its file, so a file's module fixtures are built once): the notebooks run one kernel
# each, and in one unit they ran one after another on one worker while the other had finished.
SPREAD_PER_PARAMETER = ("tests/test_notebooks.py::test_notebook_runs[",)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SpreadScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid):
            if nodeid.startswith(SPREAD_PER_PARAMETER):
                return nodeid
            return super()._split_scope(nodeid)

    return SpreadScheduling(config, log)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "needs_checkout(variable, repositories, command): compares with code that is never part of this "
        "repository; without the environment variable the test is not run and says so (.ci/test.sh lists it)",
    )


NOT_RUN = "not run: needs checkouts of"  # .ci/test.sh lists skips whose reason starts so


def pytest_runtest_setup(item):
    for mark in item.iter_markers("needs_checkout"):
        variable, repositories, command = mark.args
        if not os.environ.get(variable):
            pytest.skip(f"{NOT_RUN} {repositories} (set {variable}=DIR; command: {command})")


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
