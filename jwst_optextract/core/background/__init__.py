"""Background models of 2D/3D spectra and the variance of each estimate.

Arrays are shaped ``(..., ny, nx)`` (dispersion last, leading axes =
integrations); ``mask`` is True for pixels that may be used for the background
(good pixels *outside* the source). Every method returns a
`BackgroundEstimate`: the model at every pixel, NaN where it cannot be
estimated, and the variance of that model split like the pipeline's variance
arrays into Poisson, read-noise and flat-field parts.

Methods, and when to use them (each one module here, with its class registered in `METHODS`):

- `smooth_background` (the default of the step): a tensor-product model, a
  polynomial of degree ``degree`` across the slit times a cubic B-spline along
  the dispersion with knots every ``knot_spacing`` columns, fitted by weighted
  least squares to every background pixel at once. The background under the
  source is predicted from hundreds of pixels, so its noise adds almost nothing
  to the extracted flux. Use it whenever the background changes smoothly along
  the dispersion on scales longer than the knot spacing.
- `poly_background`: an independent polynomial across the slit in every column
  (jwst ``extract_1d``'s ``bkg_order``). For backgrounds with structure on the
  scale of a few columns (sky lines, edges of a stray-light feature); each
  column's model has the noise of the ~ny pixels it used.
- `poly_rows_background`: a polynomial *along the dispersion* in every row,
  interpolated across the rows that the source fills. For backgrounds flat
  across the slit that vary along the dispersion, or when the slit is too
  short for a cross-slit fit.
- `column_background`: a per-column median or sigma-clipped mean of the
  background rows. The simplest and most robust; for flat backgrounds.
- `image2d_background`: photutils ``Background2D`` on a grid of boxes, median
  filtered and interpolated. For large images with a sparse source (slitless
  data, wide slits).
- `combine_exposures`: dedicated background exposures or the other nods of
  a nodded observation, median- or mean-combined.

A new method is a new module here whose class follows `BackgroundMethod` and
is decorated with ``@register("name")``, and one import line below
(``from .name import NameBackground as NameBackground``): the step's ``method``
option, its help, the subtraction and this package's exports take it from the
registry.

Sigma clipping uses a signal-independent noise model (read noise and flat
variances as given, and a Poisson variance proportional to the *model*, scaled
by the data-derived ``var_poisson``), so that a pixel that fluctuates low is
not given more weight than one that fluctuates high, which would bias faint
backgrounds low.

The reported variance is the variance of the *fitted model* at each pixel
(``phi^T C phi`` for basis values ``phi`` and coefficient covariance ``C``),
not a pixel's variance. The model errors are correlated between pixels (all
the rows of a column share one polynomial); added to diagonal variance arrays
they are exact for each pixel but understate the error of a sum over many
pixels of one column. For `smooth_background` they are tiny anyway.
"""

from .base import METHODS, BackgroundEstimate, BackgroundMethod, background_method, register

# One line a method, in the order the step lists them.
from .smooth import SmoothBackground as SmoothBackground, smooth_background
from .poly import PolyBackground as PolyBackground, poly_background
from .poly_rows import PolyRowsBackground as PolyRowsBackground, poly_rows_background
from .column import ColumnBackground as ColumnBackground, column_background
from .image2d import Image2dBackground as Image2dBackground, image2d_background
from .exposures import ExposuresBackground as ExposuresBackground, combine_exposures
from .nod import NodBackground as NodBackground

__all__ = [
    "METHODS",
    "BackgroundEstimate",
    "BackgroundMethod",
    "background_method",
    "column_background",
    "combine_exposures",
    "image2d_background",
    "poly_background",
    "poly_rows_background",
    "register",
    "smooth_background",
    *(method.__name__ for method in METHODS.values()),  # every method's class
]
