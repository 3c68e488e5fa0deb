"""Injected filesystem faults for the save tests."""

import errno
import io
import os


def full_disk_after(limit):
    """An ``open`` whose files take ``limit`` bytes and then fail like a full disk (ENOSPC)."""
    real_open = open

    class Full(io.FileIO):
        written = 0

        def write(self, data):
            room = max(limit - Full.written, 0)
            Full.written += super().write(bytes(data)[:room])
            if room < len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return len(data)

    def fake_open(path, mode="r", *args, **kwargs):
        return Full(path, "wb") if "w" in mode else real_open(path, mode, *args, **kwargs)
    return fake_open
