"""HTTP collector sinks: generic JSON over HTTP (``http``) and Splunk HEC (``splunk_hec``).

Importing the package registers both types.
"""

from __future__ import annotations

from logferry.sinks.http.generic import HttpConfig, HttpSink
from logferry.sinks.http.hec import SplunkHecConfig
from logferry.sinks.http.hec_sink import HecSink

__all__ = ["HecSink", "HttpConfig", "HttpSink", "SplunkHecConfig"]
