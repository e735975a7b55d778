"""Packaged default reference files of jwst_optextract (installed as ``jwst_optextract.reference_files``)."""
