"""empirical.files: a JSON file is replaced whole, never left half-written."""

import json

from empirical.files import write_json


def test_write_json_replaces_the_file_whole_and_leaves_no_temporary_behind(tmp_path):
    path = tmp_path / "new" / "record.json"
    write_json(path, {"seconds": 1.5})
    write_json(path, {"seconds": 2.5, "sittings": 2}, indent=1)
    assert json.loads(path.read_text()) == {"seconds": 2.5, "sittings": 2}
    assert sorted(p.name for p in path.parent.iterdir()) == ["record.json"]
