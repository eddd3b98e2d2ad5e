"""The ``.nb`` accessor: stateless one-line forwarders to the library's functions."""

from __future__ import annotations

import xarray as xr

__all__ = ["NeurobridgeAccessor"]


class _Forwarders:
    def __init__(self, obj):
        self._obj = obj

    def save(self, path, **kw):
        """Forward to :func:`neurobridge.save`."""
        from ._storage import save

        return save(self._obj, path, **kw)

    def average_repetitions(self, **kw):
        """Forward to :func:`neurobridge.core.average_repetitions`."""
        from ._align import average_repetitions

        return average_repetitions(self._obj, **kw)


@xr.register_dataarray_accessor("nb")
class NeurobridgeAccessor(_Forwarders):
    """``da.nb.<name>(...)`` calls ``nb.<module>.<name>(da, ...)``.

    Examples
    --------
    >>> import numpy as np, neurobridge as nb
    >>> acts = nb.core.activations(np.ones((3, 2)), stimulus=list("abc"))
    >>> acts.nb.validate("activations").dims
    ('stimulus', 'unit')
    """

    def validate(self, kind, **kw):
        """Forward to :func:`neurobridge.core.validate`."""
        from ._schemas import validate

        return validate(self._obj, kind, **kw)

    def to_torch(self, **kw):
        """Forward to :func:`neurobridge.core.as_tensor`."""
        from ._config import as_tensor

        return as_tensor(self._obj, **kw)

    def align(self, features, **kw):
        """Forward to :func:`neurobridge.core.align` with this object as the brain data."""
        from ._align import align

        return align(self._obj, features, **kw)

    def rdm(self, **kw):
        """Forward to :func:`neurobridge.rsa.rdm`."""
        from neurobridge import rsa

        return rsa.rdm(self._obj, **kw)

    def compare(self, other, **kw):
        """Forward to :func:`neurobridge.rsa.compare`."""
        from neurobridge import rsa

        return rsa.compare(self._obj, other, **kw)

    def to_mne(self, **kw):
        """Forward to :func:`neurobridge.io.to_mne`."""
        from neurobridge import io

        return io.to_mne(self._obj, **kw)

    def to_nifti(self, **kw):
        """Forward to :func:`neurobridge.io.to_nifti`."""
        from neurobridge import io

        return io.to_nifti(self._obj, **kw)


@xr.register_dataset_accessor("nb")
class NeurobridgeDatasetAccessor(_Forwarders):
    """``ds.nb.<name>(...)`` for Datasets (storage and alignment helpers)."""
