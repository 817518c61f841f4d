"""Time series from CSV files: the columns a recipe asks for, checked, with one-line errors for bad files.

    from zoo.data.csv_series import read_csv_columns
    cols = read_csv_columns("sensor.csv", ["position"])             # {"position": array([1.2, nan, 1.9, ...])}
    cols = read_csv_columns("rolls.csv", ["face"], numeric=False)   # {"face": array(['1', '6', ...], dtype=object)}
    cols = read_csv_columns("plain.csv", ["0"])                     # a file without a header: columns by index

The first row is the header unless every field of it is a number (then columns are named "0", "1", ...);
a column may also be asked for by its 0-based index ("2") when no header field has that name. Empty cells
are missing values: NaN in numeric columns, "" in text columns. Lines that are empty or whitespace are
skipped. The delimiter is sniffed among `,`, `;`, tab and `|`.
"""

import csv
import os

import numpy as np

from zoo.errors import ZooError


def read_csv_columns(path, columns, numeric=True):
    """Returns `{name: np.ndarray}` for each of `columns` (names or 0-based indices, as strings or ints):
    float64 with NaN for empty cells when `numeric`, else object arrays of stripped strings.

    Raises `ZooError` (one line, naming the file and the fix) for a missing or unreadable file, a file
    without data rows, a row with another number of fields than the header (ragged), an unknown column
    (listing the available ones) and, when `numeric`, a cell that is not a number.
    """
    rows = _read_rows(path)
    first = rows[0][1]
    has_header = not all(_is_number(cell) for cell in first)
    names = [cell.strip() for cell in first] if has_header else [str(i) for i in range(len(first))]
    body = rows[1:] if has_header else rows
    if not body:
        raise ZooError(f"{path} has a header but no data rows; give a CSV with one row per time step")
    for line, row in body:
        if len(row) != len(names):
            raise ZooError(f"{path} line {line} has {len(row)} field(s) but the header has {len(names)}; "
                           "fix the ragged row (every row needs one field per column)")
    indices = {}
    for column in ([columns] if isinstance(columns, (str, int)) else columns):
        indices[str(column)] = _column_index(path, str(column), names)
    out = {}
    for name, index in indices.items():
        cells = [(line, row[index].strip()) for line, row in body]
        if not numeric:
            out[name] = np.array([cell for _, cell in cells], dtype=object)
            continue
        values = np.empty(len(cells), np.float64)
        for i, (line, cell) in enumerate(cells):
            if cell == "":
                values[i] = np.nan
            elif _is_number(cell):
                values[i] = float(cell)
            else:
                raise ZooError(f"{path} line {line}, column {names[index]!r}: {cell[:40]!r} is not a number; "
                               "leave missing readings empty or choose a numeric column")
        out[name] = values
    return out


def _read_rows(path):
    if not path or not os.path.isfile(path):
        raise ZooError(f"CSV file {path!r} does not exist; check --input_csv")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise ZooError(f"{path} is not UTF-8 text; save the CSV as UTF-8") from None
    except OSError as e:
        raise ZooError(f"cannot read {path} ({e.strerror}); check --input_csv") from None
    lines = text.splitlines()
    sample = "\n".join(line for line in lines[:20] if line.strip())
    if not sample:
        raise ZooError(f"{path} is empty; give a CSV with a header and one row per time step")
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows = [(number, row) for number, row in enumerate(csv.reader(lines, dialect), start=1)
            if any(cell.strip() for cell in row)]
    return rows


def _column_index(path, column, names):
    if column in names:
        return names.index(column)
    if column.isdigit() and int(column) < len(names):
        return int(column)
    raise ZooError(f"{path} has no column {column!r}; available: {', '.join(repr(n) for n in names)} "
                   "(or a 0-based index)")


def _is_number(cell):
    try:
        float(cell.strip())
    except ValueError:
        return False
    return cell.strip() != ""
