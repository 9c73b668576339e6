"""The README's Python section runs as written."""

import re

from tests.helpers import ROOT


def test_the_readme_python_script_runs_as_written(tmp_path, monkeypatch, capsys):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("\n## Python\n"):]
    script = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    exec(compile(script, "README.md", "exec"), {})
    assert (tmp_path / "runs" / "api-demo" / "edit.png").is_file()
    assert "torch.Size([2, 50])" in capsys.readouterr().out
