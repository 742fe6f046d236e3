"""``cdp connectors new``: the scaffolded plugin passes the conformance kit out of the box.

The scaffolded package is tested without pip: its tests run in a separate
``pytest`` process (outside cdp's own test suite and conftest, as a plugin
author would run them) with its ``src`` on ``PYTHONPATH``, and its plugin
module is registered with a plugin manager directly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cdp._exceptions import Conflict, InputError
from cdp.cli import connector_commands
from cdp.connectors.base import Connector
from cdp.connectors.scaffold import PluginNames, render, scaffold
from cdp.hookspecs import PluginContext
from cdp.plugins import build_plugin_manager
from cdp.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def test_names_for_every_spelling() -> None:
    names = PluginNames.from_name("loyalty-app")
    assert names == PluginNames(
        "loyalty_app", "cdp-loyalty-app", "cdp_loyalty_app", "LoyaltyAppConnector", "Loyalty App"
    )
    assert PluginNames.from_name("shopify_orders").distribution == "cdp-shopify-orders"


@pytest.mark.parametrize("bad", ["", "Loyalty", "1app", "app name", "app__x", "app-", "../escape", "x" * 41])
def test_bad_names_are_refused(bad: str) -> None:
    with pytest.raises(InputError, match="connector name"):
        PluginNames.from_name(bad)


def test_refuses_a_non_empty_directory_and_an_installed_name(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(Conflict, match="not empty"):
        scaffold("loyalty_app", tmp_path / "taken")
    assert (tmp_path / "taken" / "keep.txt").read_text(encoding="utf-8") == "mine"
    with pytest.raises(Conflict, match="already installed"):
        scaffold("pos", tmp_path / "pos", taken={"pos", "website"})
    assert not (tmp_path / "pos").exists()


def test_the_package_has_its_entry_point_and_every_part(tmp_path: Path) -> None:
    target = scaffold("loyalty_app", tmp_path / "pkg")
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert files == sorted(render(PluginNames.from_name("loyalty_app")))
    assert "src/cdp_loyalty_app/connector.py" in files and "tests/samples/bad.csv" in files
    project = tomllib.loads((target / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["name"] == "cdp-loyalty-app"
    assert "cdp" in project["project"]["dependencies"]
    assert project["project"]["entry-points"]["cdp"] == {"loyalty_app": "cdp_loyalty_app.plugin"}
    test_lines = (target / "tests" / "test_conformance.py").read_text(encoding="utf-8").splitlines()
    assert [line for line in test_lines if line.startswith("class ")] == [
        "class TestLoyaltyAppConnector(ConnectorConformance, connector_class=LoyaltyAppConnector, "
        "samples_dir=SAMPLES): ..."
    ]


def test_the_plugin_module_registers_the_connector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = scaffold("loyalty_app", tmp_path / "pkg")
    monkeypatch.syspath_prepend(str(target / "src"))
    for module in [m for m in sys.modules if m.startswith("cdp_loyalty_app")]:
        monkeypatch.delitem(sys.modules, module)
    import cdp_loyalty_app.plugin as plugin  # type: ignore[import-not-found]

    pm = build_plugin_manager(load_entry_points=False)
    pm.register(plugin, name="cdp_loyalty_app")
    pm.check_pending()
    found = {cls.name: cls for group in pm.hook.cdp_connectors(context=PluginContext(Settings())) for cls in group}
    assert (
        issubclass(found["loyalty_app"], Connector) and found["loyalty_app"].__module__ == "cdp_loyalty_app.connector"
    )
    for module in [m for m in sys.modules if m.startswith("cdp_loyalty_app")]:
        monkeypatch.delitem(sys.modules, module)


def run_pytest(package: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDP_", "PYTEST_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(package / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-W", "error", "-p", "no:cacheprovider"],
        cwd=package,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_scaffold_passes_the_kit_out_of_the_box(tmp_path: Path) -> None:
    target = scaffold("loyalty_app", tmp_path / "cdp-loyalty-app")
    result = run_pytest(target)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "9 passed" in result.stdout and "skipped" not in result.stdout


def test_a_broken_scaffold_fails_the_kit(tmp_path: Path) -> None:
    """The subprocess run is not green by accident: classifying a field as nonsense turns it red."""
    target = scaffold("loyalty_app", tmp_path / "cdp-loyalty-app")
    connector = target / "src" / "cdp_loyalty_app" / "connector.py"
    source = connector.read_text(encoding="utf-8")
    connector.write_text(
        source.replace('"country", "string", "quasi_identifier"', '"country", "string", "gossip"'), encoding="utf-8"
    )
    result = run_pytest(target)
    assert result.returncode != 0 and "test_field_classes_exist_in_policy" in result.stdout


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed")
def test_the_scaffold_is_lint_and_format_clean(tmp_path: Path) -> None:
    target = scaffold("a_rather_long_connector_name_to_wrap", tmp_path / "pkg")
    for command in (["ruff", "check", str(target)], ["ruff", "format", "--check", str(target)]):
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def test_cli_new_writes_the_package(tmp_path: Path, cli_env: dict[str, str]) -> None:
    root = typer.Typer()
    group = typer.Typer()
    root.add_typer(group, name="connectors")
    connector_commands.register(root)
    connector_commands.register(root)
    assert [c.name for c in group.registered_commands] == ["new"]
    runner = CliRunner()
    target = tmp_path / "out" / "cdp-loyalty-app"
    result = runner.invoke(root, ["connectors", "new", "loyalty-app", "--dir", str(target)])
    assert result.exit_code == 0, result.output
    assert "cdp-loyalty-app" in result.output and (target / "src" / "cdp_loyalty_app" / "plugin.py").is_file()
    again = runner.invoke(root, ["connectors", "new", "loyalty-app", "--dir", str(target)])
    assert again.exit_code != 0 and isinstance(again.exception, Conflict)
    builtin = runner.invoke(root, ["connectors", "new", "website", "--dir", str(tmp_path / "web")])
    assert isinstance(builtin.exception, Conflict) and not (tmp_path / "web").exists()


def test_cli_new_defaults_to_the_plugins_directory(tmp_path: Path, cli_env: dict[str, str]) -> None:
    root = typer.Typer()
    root.add_typer(typer.Typer(), name="connectors")
    connector_commands.register(root)
    result = CliRunner().invoke(root, ["connectors", "new", "loyalty_app"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "plugins" / "cdp-loyalty-app" / "pyproject.toml").is_file()
