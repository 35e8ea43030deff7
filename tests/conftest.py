"""Warning filters for the tests.

pytest resets the warning filters around every test, so those
:mod:`repvgg_seg.compat.warnings` installs when the package is imported do
not hold here: they are installed again as pytest's own (one list for the
tools and the tests). The filters after them are for the tests only, each
with its reason; any other warning shows in the summary, and a new one
there is a bug to fix or a harmless one to add to ``compat.warnings``.
"""
import pytest

#: ``action:message:category:module`` filters only the tests need.
TEST_FILTERS = (
    # torch 2.13 deprecates torch.jit.script/interface and still applies
    # them to its own torch.distributed.optim at import (mmengine imports
    # it); nothing of ours scripts, and tools show no library's
    # DeprecationWarning anyway.
    r'ignore:`torch\.jit\.(script|interface)` is deprecated:'
    r'DeprecationWarning:torch',
)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    # Imported here, not at the top: this conftest is loaded while pytest
    # records warnings with none of these filters yet, and the import
    # starts torch and mmengine (silenced by the package itself out here).
    from repvgg_seg.compat.warnings import KNOWN_HARMLESS
    for message, module in KNOWN_HARMLESS:
        config.addinivalue_line('filterwarnings',
                                f'ignore:{message}:UserWarning:{module}')
    for line in TEST_FILTERS:
        config.addinivalue_line('filterwarnings', line)
