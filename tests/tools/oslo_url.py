"""The broker URL the tests use (amqp://HOST:PORT/) as oslo.messaging
wants it: oslo.messaging reads amqp:// as AMQP 1.0; RabbitMQ is
rabbit://, with guest:guest unless the URL names a user. Shared by
nova_emit.py and status_listener.py (imported from this directory)."""


def oslo_url(url):
    if url.startswith("amqp://"):
        rest = url[len("amqp://"):]
        if "@" not in rest.split("/")[0]:
            rest = "guest:guest@" + rest
        return "rabbit://" + rest
    return url
