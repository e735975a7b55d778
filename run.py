import os, time, logging
os.environ.setdefault("OMP_NUM_THREADS", "1")
from jwst_optextract import OptimalExtractionPipeline
logging.getLogger("jwst_optextract").setLevel(logging.WARNING)
logging.getLogger("stpipe").setLevel(logging.WARNING)
f = "/tmp/prof/prog/jw01234001001_03101_00001_nrs1_cal.fits"
OptimalExtractionPipeline.call(f)  # warm
t=time.perf_counter()
OptimalExtractionPipeline.call(f)
print("time", time.perf_counter()-t)
