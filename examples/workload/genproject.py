"""Generate a small Python project (modules + unittest tests) to build and test.

usage: genproject.py DIR [MODULES]
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def main() -> int:
    root = Path(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 12
    if root.exists():
        shutil.rmtree(root)
    (root / "src" / "calc").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "src" / "calc" / "__init__.py").write_text("")
    for i in range(n):
        (root / "src" / "calc" / f"m{i:02d}.py").write_text(
            f"def f{i}(x: int) -> int:\n    return sum((x * k) % {i + 7} for k in range({2000 + i * 100}))\n"
        )
        (root / "tests" / f"test_m{i:02d}.py").write_text(
            "import sys, unittest\n"
            f"sys.path.insert(0, {str(root / 'src')!r})\n"
            f"from calc.m{i:02d} import f{i}\n\n"
            f"class T(unittest.TestCase):\n"
            f"    def test_f{i}(self) -> None:\n"
            f"        self.assertEqual(f{i}(3), sum((3 * k) % {i + 7} for k in range({2000 + i * 100})))\n"
        )
        print(f"OPSDECK_PROGRESS {(i + 1) / n:.2f} module m{i:02d}", flush=True)
    print(f"generated {n} modules in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
