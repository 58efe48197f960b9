"""The browser test's defect checks flag what they claim to flag (so a clean report means something)."""
from lab_browser import NotebookReport, plot_defects, unrounded


def _plot(traces, modebar=None, legend=None, title=None):
    return dict(index=0, title="t", traces=traces, modebar=modebar, legend=legend, gtitle=title)


def test_plot_defects_flag_empty_single_point_and_covered_plots():
    line = dict(type="scatter", mode="lines", name="a", points=1)
    assert plot_defects([_plot([])]) == ["plot 0 ('t') is empty"]
    assert plot_defects([_plot([dict(line, points=0)])]) == ["plot 0 ('t') is empty"]
    assert plot_defects([_plot([line, dict(line, name="b")])]) == ["plot 0 ('t') is a line plot of single points"]
    assert plot_defects([_plot([dict(type="bar", mode="", name="a", points=1)])]) == []  # a bar of one value is fine
    assert plot_defects([_plot([dict(line, points=50)], modebar=[900, 10, 1100, 30], legend=[950, 20, 1200, 60])]) \
        == ["plot 0 ('t'): plotly's toolbar covers the legend"]
    assert plot_defects([_plot([dict(line, points=50)], modebar=[900, 10, 1100, 30], title=[100, 10, 400, 30])]) == []


def test_unrounded_numbers_are_float_noise_not_small_values():
    assert unrounded("executed action [0.8399999737739563]") == ["0.8399999737739563"]
    assert unrounded("one_step_mae 0.0045, return 853.49, eta 0.000202, step 12,345") == []
    assert unrounded("loss 1234.5678") == ["1234.5678"]


def test_report_lists_every_defect_with_the_notebook_name():
    r = NotebookReport("00_tour", finished=True, stderr=["warning"], log_console=["boom"], unrounded=["0.1234567"])
    assert r.defects() == ["00_tour: stderr output: warning", "00_tour: log console: boom",
                           "00_tour: unrounded number in an output: 0.1234567"]
    assert NotebookReport("x").defects()[0].startswith("x: Run All did not finish")
