"""What the workflow needs from its environment: a light job-graph start, the same pins
everywhere, and the package itself in the conda environment."""

from __future__ import annotations

import re
import subprocess
import sys

import yaml

from .conftest import REPO

HEAVY = ("photutils", "cv2", "matplotlib", "seaborn", "pandas", "acstools", "astropy.table")


def rule_file_imports() -> set[str]:
    """The clusterphot modules that the Snakefile and its rule files import."""
    sources = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
    modules = set()
    for path in sources:
        for module, names in re.findall(r"^\s*from (clusterphot[\w.]*) import (\([^)]*\)|[\w, ]+)$", path.read_text(),
                                        flags=re.MULTILINE):
            modules.add(module)
            if module == "clusterphot":  # from clusterphot import paths
                modules.update(f"clusterphot.{n.strip()}" for n in names.strip("()").split(",") if n.strip())
    return modules


def test_building_the_job_graph_imports_no_photutils_opencv_or_matplotlib():
    modules = rule_file_imports()
    assert "clusterphot.config" in modules and "clusterphot.paths" in modules
    code = (f"import sys\nfor m in {sorted(modules)!r}: __import__(m)\n"
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"heavy modules imported at start-up: {result.stdout}"


def requirement_pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s#]+)", line.strip())
        if match:
            pins[match[1].lower().replace("_", "-")] = match[2]
    return pins


def test_the_conda_environment_pins_what_requirements_txt_pins_and_installs_the_package():
    env = yaml.safe_load((REPO / "workflow" / "envs" / "clusterphot.yaml").read_text())
    python = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python=")]
    assert python == [f"python={sys.version_info.major}.{sys.version_info.minor}"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pinned = requirement_pins((REPO / "requirements.txt").read_text().splitlines())
    for name, version in requirement_pins(pip).items():
        assert pinned.get(name) == version, f"{name}: {version} in the conda env, {pinned.get(name)} in requirements.txt"
    # the package itself, by the path the workflow puts in CLUSTERPHOT_SOURCE
    assert "-e ${CLUSTERPHOT_SOURCE}" in pip


def test_the_workflow_tells_the_conda_environment_where_the_package_is():
    """Building the job graph sets CLUSTERPHOT_SOURCE to the repository, for the pip line above."""
    code = ("import os\nfrom pathlib import Path\nfrom snakemake.api import SnakemakeApi\n"
            "from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings\n"
            "os.environ.pop('CLUSTERPHOT_SOURCE', None)\n"
            "with SnakemakeApi(OutputSettings()) as api:\n"
            f"    api.workflow(resource_settings=ResourceSettings(cores=1), config_settings=ConfigSettings(),\n"
            f"                 snakefile=Path({str(REPO / 'Snakefile')!r}), workdir=Path({str(REPO)!r})).dag()\n"
            "    print(os.environ['CLUSTERPHOT_SOURCE'])\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == str(REPO.resolve())


def test_pip_installs_the_package_from_the_conda_environments_pip_section(tmp_path):
    """conda hands the pip section to pip as a requirements file: pip expands the variable."""
    env = yaml.safe_load((REPO / "workflow" / "envs" / "clusterphot.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    requirements = tmp_path / "condaenv.requirements.txt"
    requirements.write_text("\n".join(line for line in pip if line.startswith("-e")) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-build-isolation", "--no-index",
         "-r", str(requirements)],
        capture_output=True, text=True, timeout=300, env={"CLUSTERPHOT_SOURCE": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"Would install clusterphot-\d", result.stdout), result.stdout
