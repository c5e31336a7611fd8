"""``python -m gkd``: the ``gkd-run`` command line."""

from gkd.cli import main

if __name__ == "__main__":
    main(prog_name="python -m gkd")
