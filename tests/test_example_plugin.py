"""The example third-party plugin (``plugins/cdp-shopify-orders``) passes its own tests.

Run pip-free, the way CI sees a fresh clone: the plugin's tests run in their
own ``pytest`` process with its ``src`` on ``PYTHONPATH``, outside cdp's
conftest, exactly as a plugin author runs them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

PLUGIN = Path(__file__).resolve().parent.parent / "plugins" / "cdp-shopify-orders"


def test_the_shopify_orders_plugin_passes_its_tests() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDP_", "PYTEST_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(PLUGIN / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-W", "error", "-p", "no:cacheprovider"],
        cwd=PLUGIN,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed is not None and int(passed.group(1)) >= 14, result.stdout  # the kit's 9 checks + the plugin's own
