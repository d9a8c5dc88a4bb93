"""plots: prompt text in a figure is shown as text, never read as plotly's markup."""

from p2p_widgets import plots
from p2p_widgets.engine.mapper import align
from p2p_widgets.engine.schedule import AlphaSchedule
from p2p_widgets.widgets.timeline import AlphaTimeline

MARKUP = "<b>big</b>"  # plotly renders <b>, <i>, <br>, <a href> in titles, labels and hover text
SOURCE = f"a {MARKUP} cat on a mat"
TARGET = f"a {MARKUP} dog on a mat"


def _strings(node):
    """Every string in a figure's JSON."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _strings(value)


def _raw_markup(fig) -> list[str]:
    return [s for s in _strings(fig.to_plotly_json()) if "<b>" in s or "</b>" in s]


def test_no_figure_reads_prompt_text_as_markup(editor, tokenizer):
    """token_maps and head_maps put words into titles and hover text, mapper_matrix and schedule
    tokens into axis labels, and the timeline the target into its title, unescaped."""
    result = editor.edit(SOURCE, TARGET, steps=4, seed=1)
    source, target = result.prompts[0], result.prompts[1]
    assert MARKUP in [w.text for w in source.words]
    mapper = align(SOURCE, TARGET, tokenizer)
    timeline = AlphaTimeline(TARGET, steps=4, tokenizer=tokenizer)
    timeline.set_window(MARKUP, 0, 2)
    figures = {
        "images": plots.images(result.images, [SOURCE, TARGET]),
        "token_maps": plots.token_maps(result.store, source, words=[MARKUP, "cat"]),
        "mapper_matrix": plots.mapper_matrix(mapper),
        "schedule": plots.schedule(AlphaSchedule.build(4), target),
        "timeline": timeline.to_plotly(),
    }
    assert {name: _raw_markup(fig) for name, fig in figures.items()} == {name: [] for name in figures}
    shown = [s for s in _strings(figures["token_maps"].to_plotly_json()) if "&lt;b&gt;big&lt;/b&gt;" in s]
    assert shown, "the word is still shown, as text"
