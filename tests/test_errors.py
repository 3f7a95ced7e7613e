"""The package's errors as a learner meets them in a notebook's kernel (gan_helpers.errors)."""

from __future__ import annotations

import pytest


def test_the_packages_errors_are_one_line_in_a_notebook_and_still_stop_the_run():
    """In a kernel, a GanHelpersError shows as `error: ...` without a traceback, and the cell
    still fails (so "Run all" stops there); any other error keeps its traceback."""
    import nbclient
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from gan_helpers import data"),
                nbformat.v4.new_code_cell("data.make_loader('cifar')"),
                nbformat.v4.new_code_cell("1 / 0")]
    nbclient.NotebookClient(nb, allow_errors=True, timeout=120).execute()
    assert nb.cells[1].outputs == [{"output_type": "stream", "name": "stderr", "text":
                                    "error: Unknown dataset 'cifar': choose one of mnist, "
                                    "fashion-mnist.\n"}]
    assert nb.cells[2].outputs[0]["ename"] == "ZeroDivisionError"
    nb.cells = nb.cells[:2] + [nbformat.v4.new_code_cell("print('not reached')")]
    with pytest.raises(nbclient.exceptions.CellExecutionError):
        nbclient.NotebookClient(nb, timeout=120).execute()
    assert nb.cells[2].outputs == []
