"""Messages between hog's own processes (runner, slot processes, the Ray bridge) over
``multiprocess`` pipes: the ``hog.messages``, pickled, one per message (a slot
sends the ``Ended`` of a job and the ``Started`` of the next one it handed over as
one list: one wake-up of the runner)."""
import pickle


def send(conn, message) -> bool:
    """Send ``message``; False when the other end is gone (its EOF is seen by whoever
    reads from it)."""
    try:
        conn.send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))
        return True
    except OSError:
        return False


def receive(conn):
    """The next message; raises EOFError or OSError when the other end is gone."""
    return pickle.loads(conn.recv_bytes())
