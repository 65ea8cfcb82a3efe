"""`cxrlab explain RUN_DIR` writes into the run; `cxrlab evaluate RUN_DIR` puts its scores and gallery in the report."""

import base64
import json
import shutil

from cxrlab.cli import main
from cxrlab.evaluate.document import Document
from cxrlab.evaluate.explain_section import explain_section


def test_evaluate_run_embeds_explain_gallery(tiny_run, tmp_path, capsys):
    src, index_dir = tiny_run
    run = tmp_path / "run"
    shutil.copytree(src, run)  # the session run stays untouched
    assert main(["explain", str(run), "--index", str(index_dir), "--split", "test", "--max-images", "4",
                 "--bootstrap", "20", "--no-sanity"]) == 0
    err = capsys.readouterr().err
    assert str(run / "explain" / "gallery.html") in err and f"cxrlab evaluate {run}" in err
    gallery = json.loads((run / "explain" / "gallery.json").read_text())
    assert "most uncertain" in gallery and all((run / "explain" / c["png"]).is_file()
                                               for cards in gallery.values() for c in cards)
    out = tmp_path / "ev"
    assert main(["evaluate", str(run), "--labels", str(index_dir), "--bootstrap", "20", "--out", str(out)]) == 0
    html = (out / "report.html").read_text()
    assert "Explanations (heat maps)" in html and "pointing game" in html and "Gallery: most uncertain" in html
    first = gallery["most uncertain"][0]
    png = base64.b64encode((run / "explain" / first["png"]).read_bytes()).decode()
    assert png in html  # embedded: the report stays self-contained
    assert "href='../run/explain/gallery.html'" in html
    md = (out / "report.md").read_text()
    assert "Explanations (heat maps)" in md and "](../run/explain/gallery.html)" in md
    loc = json.loads((run / "explain" / "localization.json").read_text())
    mean = loc["methods"]["gradcam"]["all"]["pointing"]["mean"]  # phantom boxes of the test images
    assert f"<td>{mean:.3f} [" in html


def test_explain_elsewhere_says_how_to_get_it_into_the_report(tiny_run, tmp_path, capsys):
    run, index_dir = tiny_run
    assert main(["explain", str(run), "--index", str(index_dir), "--split", "test", "--max-images", "2", "--json",
                 "--no-sanity", "--bootstrap", "10", "--out", str(tmp_path / "e")]) == 0
    err = capsys.readouterr().err
    assert "localization.json" in err and str(run / "explain") in err and "the default --out" in err


def test_explain_section_absent_or_table_only(tmp_path):
    doc = Document("t")
    assert explain_section(doc, tmp_path / "nothing", tmp_path) is False and doc.blocks == []
    d = tmp_path / "explain"
    d.mkdir()
    ci = {"mean": 0.75, "ci95": [0.5, 1.0]}
    (d / "localization.json").write_text(json.dumps({
        "methods": {"gradcam": {"all": {"n": 4, "pointing": ci, "iou": ci, "iob": ci},
                                "Nodule": {"n": 4, "pointing": ci, "iou": ci, "iob": ci}}},
        "methods_run": ["gradcam"], "n_images": 4, "chance_pointing": 0.1,
        "sanity": {"method": "gradcam", "trained_pointing": 0.75, "random_pointing": 0.25, "verdict": "pass"}}))
    assert explain_section(doc, d, tmp_path / "out") is True
    tables = [b for b in doc.blocks if b[0] == "table"]
    assert tables[0][2][0] == ["gradcam", "all", "4", "0.750 [0.500, 1.000]", *["0.750 [0.500, 1.000]"] * 2]
    assert not [b for b in doc.blocks if b[0] in ("fig", "link")]  # no gallery written: no images, no link
    assert "re-initialised 0.250: pass" in doc.html()
