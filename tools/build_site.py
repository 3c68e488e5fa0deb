"""The course site: a Sphinx book (myst-nb + sphinx-book-theme) of the executed notebooks.

Usage: python tools/build_site.py [--executed build] [--out build/site] [--student build/student]
The notebooks come with the outputs of ``make run`` (nothing is executed again); the
``run_<profile>.json`` files beside them give each notebook's time in each profile run there.
The "Abrir en Colab" link is ``$XAI_COLAB_BASE/notebooks/<name>.ipynb`` (for example the Colab
address of the repository's main branch); without ``$XAI_COLAB_BASE`` (or ``--colab-base``) the
link is left out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = Path(__file__).resolve().parent / "site"
TRACKS = (("PyTorch · CIFAR-10", "0"), ("Keras / TensorFlow · Flowers102", "1"))
PROFILE_ORDER = {"fast": 0, "full": 1}


def title_and_goals(nb) -> tuple[str, list[str]]:
    """The notebook's ``# title`` and its **Objetivos** bullets (first markdown cell)."""
    text = next(("".join(c.source) for c in nb.cells if c.cell_type == "markdown"), "")
    title = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), "")
    goals = text.split("**Objetivos**", 1)[1] if "**Objetivos**" in text else ""
    bullets = [line[2:].strip() for line in goals.strip().splitlines() if line.startswith("- ")]
    return title, bullets


def page(nb, name: str, title: str, colab_base: str | None, student: Path | None) -> None:
    """Put the links (Colab, downloads) under the title and objectives; give figures alt text
    naming the notebook and section."""
    links = []
    if colab_base:
        links.append(f"[Abrir en Colab]({colab_base.rstrip('/')}/notebooks/{name})")
    links.append(f"{{download}}`Descargar el cuaderno ejecutado <executed/{name}>`")
    if student is not None:
        links.append(f"{{download}}`Descargar la versión del estudiante <student/{name}>`")
    first = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown")
    nb.cells.insert(first + 1, nbformat.v4.new_markdown_cell(" · ".join(links)))
    section = ""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            heading = [line.lstrip("#").strip() for line in cell.source.splitlines()
                       if line.startswith("#")]
            section = heading[-1] if heading else section
        elif any("image/png" in out.get("data", {}) for out in cell.get("outputs", [])):
            alt = f"Figura de «{title}», sección «{section}»"
            cell.metadata.setdefault("mystnb", {})["image"] = {"alt": alt}


def _minutes(timing: dict | None) -> str:
    if not timing:
        return "sin medir"
    minutes = f"{timing['seconds'] / 60:.1f}".replace(".", ",")
    return minutes if timing.get("ok") else f"{minutes} (con error)"


def home(rows: list[dict], runs: dict[str, dict], colab_base: str | None) -> str:
    """The Spanish home page (MyST markdown) with the table of contents."""
    lines = ["# Interpretabilidad de CNN y aumento de datos", "",
             "Curso práctico en cuadernos de Jupyter: cómo **explicar** lo que mira una red "
             "convolucional (saliencia, Grad-CAM, Guided Backpropagation, oclusión, Integrated "
             "Gradients, con métricas de calidad y pruebas de cordura) y cómo **entrenarla "
             "mejor** con aumento de datos, Mixup, CutMix y ajuste fino. Cada cifra de estas "
             "páginas sale de una ejecución real de los cuadernos.", "",
             "## Dos itinerarios, en este orden", ""]
    for track, prefix in TRACKS:
        lines.append(f"**{track}**")
        lines.append("")
        for row in rows:
            if row["name"].startswith(prefix):
                goal = f": {row['goals'][0]}" if row["goals"] else ""
                lines.append(f"- [{row['title']}]({row['stem']}.ipynb){goal}")
        lines.append("")
    profiles = sorted(runs, key=lambda p: PROFILE_ORDER.get(p, 9))
    lines += ["## Cuánto tarda cada cuaderno", "",
              "Minutos medidos al ejecutar los cuadernos para estas páginas, por perfil: `fast` "
              "reduce los tamaños para una CPU; `full` usa los conjuntos completos y pide una GPU. "
              "«sin medir»: ese perfil no se ejecutó aquí.", "",
              "| cuaderno | " + " | ".join(f"`{p}` ({runs[p].get('device', '?')})"
                                         for p in profiles) + " |",
              "|---|" + "---|" * len(profiles)]
    for row in rows:
        cells = [_minutes(runs[p].get("notebooks", {}).get(row["name"])) for p in profiles]
        lines.append(f"| [{row['title']}]({row['stem']}.ipynb) | " + " | ".join(cells) + " |")
    if not profiles:
        lines.append("| (sin medir) | |")
    lines += ["", "## Requisitos y cómo ejecutarlo", "",
              "- **En local**: Python 3.11; `make install` crea el entorno, `make lab` abre "
              "JupyterLab y `make run` ejecuta todos los cuadernos. Los datos se buscan en "
              "`XAI_DATA_DIR` (por defecto `data/`) y, si no están, se descargan.",
              "- **En Colab**: " + ("el enlace «Abrir en Colab» de cada página abre el cuaderno; "
                                   "la primera celda clona el repositorio si hace falta."
                                   if colab_base else "define `XAI_REPO_URL` con la URL git del "
                                   "repositorio en una celda y ejecuta la primera celda del "
                                   "cuaderno: lo clona."),
              "- El perfil se elige solo (`fast` en CPU, `full` con GPU) o con `XAI_PROFILE`.", "",
              "```{toctree}", ":hidden:", ":maxdepth: 1", ""]
    lines += [row["stem"] for row in rows]
    lines += ["```", ""]
    return "\n".join(lines)


def build(executed: Path, out: Path, colab_base: str | None, student_dir: Path | None) -> Path:
    """Write the Sphinx sources to ``<out>_src`` and the HTML to ``out``; returns index.html."""
    paths = sorted(executed.glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"no executed notebooks in {executed}; run `make run` first")
    runs = {r["profile"]: r for r in (json.loads(p.read_text(encoding="utf-8"))
                                      for p in sorted(executed.glob("run_*.json")))}
    src = out.with_name(f"{out.name}_src")
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(src, ignore_errors=True)
    (src / "student").mkdir(parents=True)
    (src / "executed").mkdir()
    shutil.copy(TEMPLATE / "conf.py", src / "conf.py")
    shutil.copytree(TEMPLATE / "_static", src / "_static")
    rows = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        title, goals = title_and_goals(nb)
        student = student_dir / path.name if student_dir else None
        student = student if student is not None and student.exists() else None
        if student is not None:
            shutil.copy(student, src / "student" / path.name)
        shutil.copy(path, src / "executed" / path.name)  # the download: as make run left it
        page(nb, path.name, title, colab_base, student)
        nbformat.write(nb, src / path.name)
        rows.append({"name": path.name, "stem": path.stem, "title": title or path.stem,
                     "goals": goals})
    (src / "index.md").write_text(home(rows, runs, colab_base), encoding="utf-8")
    subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-q", "-W", "--keep-going",
                    str(src), str(out)], check=True)
    return out / "index.html"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executed", type=Path, default=ROOT / "build")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site")
    parser.add_argument("--student", type=Path, default=ROOT / "build" / "student")
    parser.add_argument("--colab-base", default=os.environ.get("XAI_COLAB_BASE") or None)
    args = parser.parse_args()
    index = build(args.executed, args.out, args.colab_base, args.student)
    print(f"Site: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
