"""open_datamodel: the model datamodels.open makes, without its scan of every header per array."""

import numpy as np
import pytest
from astropy.io import fits
from stdatamodels.jwst import datamodels

from jwst_optextract import simulate
from jwst_optextract.io.opening import IndexedHDUList, open_datamodel


@pytest.fixture(scope="module")
def mos_file(tmp_path_factory):
    model, _ = simulate.make_multislit(n_slits=6, nx=120, ny=16, flux=10.0, seed=2)
    path = tmp_path_factory.mktemp("opening") / "jw01234001001_03101_00001_nrs1_cal.fits"
    model.save(path)
    return path


def test_the_model_equals_the_one_datamodels_open_makes(mos_file):
    ours, theirs = open_datamodel(mos_file), datamodels.open(mos_file)
    assert type(ours) is type(theirs) is datamodels.MultiSlitModel
    assert ours.meta.filename == theirs.meta.filename == mos_file.name
    flat_ours, flat_theirs = ours.to_flat_dict(), theirs.to_flat_dict()
    assert flat_ours.keys() == flat_theirs.keys()
    for key, value in flat_ours.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, flat_theirs[key], err_msg=key)
        else:
            assert str(value) == str(flat_theirs[key]), key
    assert ours.slits[3].meta.wcs(5, 7) == theirs.slits[3].meta.wcs(5, 7)


def test_lookups_by_name_and_version_match_astropys(mos_file):
    with fits.open(mos_file) as hdulist:
        indexed = IndexedHDUList(list(hdulist))
        for key in [("SCI", 1), ("sci", 4), ("DQ", 6), ("VAR_FLAT", 2), ("WAVELENGTH", 5), "SCI", 2, ("ASDF", 1)]:
            assert indexed.index_of(key) == hdulist.index_of(key), key
        with pytest.raises(KeyError):
            indexed.index_of(("SCI", 99))


def test_other_inputs_go_to_datamodels_open(tmp_path, mos_file):
    model = open_datamodel(mos_file)
    assert open_datamodel(model) is model
    image = tmp_path / "no_datamodl.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((4, 5), np.float32), name="SCI")]).writeto(image)
    with pytest.warns(Warning, match="model_type not found"):  # guessed from its shape, as jwst does
        assert isinstance(open_datamodel(image), datamodels.ImageModel)


def test_the_tree_is_not_validated_again_and_asdf_s_setting_is_left_alone(mos_file, monkeypatch):
    import asdf

    validated = []
    original = asdf.AsdfFile._validate
    monkeypatch.setattr(asdf.AsdfFile, "_validate", lambda *a, **k: validated.append(1) or original(*a, **k))
    open_datamodel(mos_file)
    assert not validated  # asdf validated it when it was written
    assert asdf.get_config().validate_on_read
    datamodels.open(mos_file)
    assert validated  # what is skipped
