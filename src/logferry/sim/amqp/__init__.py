"""A small AMQP 1.0 server side for the simulators: type codec, frames, connection handling, CBS.

Written from the OASIS AMQP 1.0 specification and checked against Microsoft's ``azure-eventhub``
client; it shares no code with any client, so tests that run a client against it test the client's
wire behaviour and not our own reading of it twice.
"""

__all__: list[str] = []
