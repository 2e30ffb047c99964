# uptime.py: a numeric channel, so that the generated layout in user_api.py has a plot.

import time

started = time.time()


def _get_channels():
    return [{"name": "uptime", "type": "numeric"}]


def _get_data(channel):
    return time.time() - started if channel == "uptime" else None
