"""Tiny fixtures in each public dataset's real layout, written in the test (images are small noise PNGs/JPEGs)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

LABEL_FILES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "label-files"


def write_image(path: Path, seed: int = 0, size: int = 24, bits: int = 8) -> Path:
    """A small gray image (PNG, JPEG by suffix; 16-bit PNG with ``bits=16``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    if bits == 16:
        Image.fromarray(rng.integers(0, 4095, (size, size), dtype=np.uint16)).save(path)
    else:
        Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(path)
    return path


def write_dicom(path: Path, seed: int = 0, size: int = 24, pixels: bool = True, sex: str = "M", age: str = "045Y",
                view: str = "PA") -> Path:
    """A tiny valid DICOM (MONOCHROME2, 16-bit, with sex/age/view tags), optionally without pixel data."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    path.parent.mkdir(parents=True, exist_ok=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.Modality, ds.SOPClassUID = "CR", meta.MediaStorageSOPClassUID
    ds.PatientSex, ds.PatientAge, ds.ViewPosition = sex, age, view
    ds.Rows = ds.Columns = size
    ds.PhotometricInterpretation, ds.SamplesPerPixel = "MONOCHROME2", 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if pixels:
        ds.PixelData = np.random.default_rng(seed).integers(0, 4095, (size, size), dtype=np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def write_csv(path: Path, frame: pd.DataFrame, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = frame.to_csv(index=False)
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


CHEXPERT_HEADER = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", "No Finding", "Enlarged Cardiomediastinum",
                   "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema", "Consolidation", "Pneumonia", "Atelectasis",
                   "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture", "Support Devices"]


def make_chexpert(root: Path, inside: bool = True) -> Path:
    """CheXpert-v1.0-small with 4 train rows (one lateral) and 1 valid row; ROOT is the dataset folder
    (``inside``) or the folder above it."""
    ds = root / "CheXpert-v1.0-small" if not inside else root
    rows = [
        ("train/patient00001/study1/view1_frontal.jpg", "Female", "68", "Frontal", "AP", {"No Finding": "1.0",
                                                                                         "Support Devices": "1.0"}),
        ("train/patient00002/study2/view1_frontal.jpg", "Female", "87", "Frontal", "AP",
         {"Cardiomegaly": "-1.0", "Lung Opacity": "1.0", "Edema": "-1.0", "Pneumothorax": "0.0"}),
        ("train/patient00002/study2/view2_lateral.jpg", "Female", "87", "Lateral", "", {"Lung Opacity": "1.0"}),
        ("train/patient00003/study1/view1_frontal.jpg", "Male", "41", "Frontal", "PA", {"Edema": "-1.0"}),
    ]
    frame = pd.DataFrame([{**dict(zip(CHEXPERT_HEADER[:5], [f"CheXpert-v1.0-small/{p}", s, a, fl, ap])), **labels}
                          for p, s, a, fl, ap, labels in rows], columns=CHEXPERT_HEADER)
    write_csv(ds / "train.csv", frame)
    valid = frame.iloc[:1].copy()
    valid["Path"] = "CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg"
    write_csv(ds / "valid.csv", valid)
    for i, p in enumerate([*(r[0] for r in rows), "valid/patient64541/study1/view1_frontal.jpg"]):
        write_image(ds / p, seed=i)
    return root


def make_mimic(root: Path) -> Path:
    """PhysioNet's MIMIC-CXR-JPG layout: 3 studies of 2 subjects, 5 images (one lateral, one image missing)."""
    labels = pd.DataFrame({"subject_id": ["10000032", "10000032", "10000764"],
                           "study_id": ["50414267", "53189527", "57375967"],
                           "Atelectasis": ["", "-1.0", "1.0"], "Cardiomegaly": ["0.0", "", "1.0"],
                           "No Finding": ["1.0", "", ""], "Edema": ["", "", "-1.0"]})
    write_csv(root / "mimic-cxr-2.0.0-chexpert.csv", labels, gz=True)
    meta = pd.DataFrame({"dicom_id": ["d1", "d2", "d3", "d4", "d5"],
                         "subject_id": ["10000032", "10000032", "10000032", "10000764", "10000764"],
                         "study_id": ["50414267", "50414267", "53189527", "57375967", "57375967"],
                         "ViewPosition": ["PA", "LATERAL", "AP", "AP", "PA"]})
    write_csv(root / "mimic-cxr-2.0.0-metadata.csv", meta)
    split = meta[["dicom_id", "study_id", "subject_id"]].assign(split=["train", "train", "validate", "test", "test"])
    write_csv(root / "mimic-cxr-2.0.0-split.csv", split)
    for i, r in meta.iloc[:4].iterrows():  # d5 not downloaded
        folder = root / "files" / f"p{r.subject_id[:2]}" / f"p{r.subject_id}" / f"s{r.study_id}"
        write_image(folder / f"{r.dicom_id}.jpg", seed=i)
    return root


PADCHEST_COLUMNS = ["", "ImageID", "ImageDir", "StudyDate_DICOM", "StudyID", "PatientID", "PatientBirth",
                    "PatientSex_DICOM", "Projection", "MethodLabel", "Labels"]


def make_padchest(root: Path) -> Path:
    """4 rows: two images of one study (PA + lateral), a normal AP image, one RNN-labelled, one without terms."""
    rows = [[0, "a.png", "0", "20140915", "s1", "p1", "1930.0", "F", "PA", "Physician",
             "['pneumonia', 'infiltrates']"],
            [1, "b.png", "0", "20140915", "s1", "p1", "1930.0", "F", "L", "Physician", "['pneumonia', 'infiltrates']"],
            [2, "c.png", "1", "20150101", "s2", "p2", "1950.0", "M", "AP_horizontal", "RNN_model",
             "['normal']"],
            [3, "d.png", "1", "20150101", "s3", "p3", "1950.0", "O", "PA", "Physician", "nan"],
            [4, "e.png", "1", "20150101", "s4", "p4", "1960.0", "M", "PA", "Physician",
             "['pleural effusion', 'kyphosis']"]]
    write_csv(root / "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv", pd.DataFrame(rows,
                                                                                       columns=PADCHEST_COLUMNS))
    for i, r in enumerate(rows):
        write_image(root / r[2] / r[1], seed=i, bits=16)
    return root


def make_vindr(root: Path) -> Path:
    """2 images x 3 readers: a Cardiomegaly seen by 2 readers, a Nodule/Mass by 1; one image all No finding."""
    rows = [("img1", "Cardiomegaly", "3", "R1", "10", "20", "110", "220"),
            ("img1", "Cardiomegaly", "3", "R2", "12", "22", "112", "222"),
            ("img1", "Nodule/Mass", "8", "R2", "5", "5", "15", "25"),
            ("img1", "No finding", "14", "R3", "", "", "", ""),
            ("img2", "No finding", "14", "R1", "", "", "", ""), ("img2", "No finding", "14", "R4", "", "", "", ""),
            ("img2", "No finding", "14", "R5", "", "", "", "")]
    cols = ["image_id", "class_name", "class_id", "rad_id", "x_min", "y_min", "x_max", "y_max"]
    write_csv(root / "train.csv", pd.DataFrame(rows, columns=cols))
    write_dicom(root / "train" / "img1.dicom", seed=1, size=256)  # boxes are scaled by 1024 / 256
    write_dicom(root / "train" / "img2.dicom", seed=2, size=256)
    return root


def make_rsna(root: Path) -> Path:
    """3 patients: one with 2 boxes, one negative, one whose rows conflict; detailed class info beside."""
    rows = [("p1", "100", "150", "50", "60", "1"), ("p1", "300", "350", "40", "30", "1"),
            ("p2", "", "", "", "", "0"), ("p3", "", "", "", "", "0"), ("p3", "10", "10", "5", "5", "1")]
    write_csv(root / "stage_2_train_labels.csv", pd.DataFrame(rows, columns=["patientId", "x", "y", "width",
                                                                            "height", "Target"]))
    write_csv(root / "stage_2_detailed_class_info.csv", pd.DataFrame(
        {"patientId": ["p1", "p1", "p2", "p3", "p3"], "class": ["Lung Opacity", "Lung Opacity", "Normal",
                                                               "Lung Opacity", "Lung Opacity"]}))
    for i, pid in enumerate(("p1", "p2", "p3")):
        write_dicom(root / "stage_2_train_images" / f"{pid}.dcm", seed=i, sex="MF"[i % 2], age=f"0{40 + i}Y",
                    view="AP" if i else "PA")
    return root
