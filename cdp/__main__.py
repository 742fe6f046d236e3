"""``python -m cdp``: the ``cdp`` command, for environments where the script is not on PATH."""

from cdp.cli import main

if __name__ == "__main__":
    main()
