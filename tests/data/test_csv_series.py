"""zoo.data.csv_series: columns by name or index, missing cells, and one-line errors for bad files."""

import numpy as np
import pytest

from zoo.data.csv_series import read_csv_columns
from zoo.errors import ZooError


def write(tmp_path, text, name="s.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_named_columns_missing_cells_and_blank_lines(tmp_path):
    path = write(tmp_path, "t,position,label\n0,1.5,a\n1,,b\n\n2,-2e-1,c\n")
    got = read_csv_columns(path, ["position"])
    np.testing.assert_array_equal(got["position"], [1.5, np.nan, -0.2])
    assert got["position"].dtype == np.float64
    assert list(read_csv_columns(path, "label", numeric=False)["label"]) == ["a", "b", "c"]
    np.testing.assert_array_equal(read_csv_columns(path, [0])["0"], [0, 1, 2])  # by index


def test_headerless_and_other_delimiters(tmp_path):
    np.testing.assert_array_equal(read_csv_columns(write(tmp_path, "1;2\n3;4\n"), ["1"])["1"], [2, 4])
    np.testing.assert_array_equal(read_csv_columns(write(tmp_path, "x\ty\n1\t2\n", "t.tsv"), ["y"])["y"], [2])
    np.testing.assert_array_equal(read_csv_columns(write(tmp_path, "v\n1\n2\n"), ["v"])["v"], [1, 2])


@pytest.mark.parametrize("text, column, fragments", [
    ("", "x", ["is empty"]),
    ("\n  \n", "x", ["is empty"]),
    ("a,b\n", "a", ["no data rows"]),
    ("a,b\n1,2\n3\n", "a", ["line 3 has 1 field(s)", "ragged"]),
    ("a,b\n1,2\n", "c", ["no column 'c'", "available: 'a', 'b'"]),
    ("a,b\n1,x\n", "b", ["line 2, column 'b'", "not a number"]),
])
def test_bad_files_are_one_line_errors(tmp_path, text, column, fragments):
    with pytest.raises(ZooError) as e:
        read_csv_columns(write(tmp_path, text), [column])
    assert "\n" not in str(e.value)
    for fragment in fragments:
        assert fragment in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(ZooError, match="does not exist; check --input_csv"):
        read_csv_columns(str(tmp_path / "nope.csv"), ["a"])
