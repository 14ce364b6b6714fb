"""moto's server, with DynamoDB requests applied one at a time.

moto's DynamoDB backend is not thread-safe: TransactWriteItems deep-copies tables for its
rollback while other request threads write to them, and a conditional write can interleave
with another. Real DynamoDB makes each item write and each transaction atomic; serialising
DynamoDB requests gives the local stack the same guarantees. Other services (SQS long polls)
stay concurrent.

Usage: python infra/moto_server.py [moto_server arguments]
"""

import sys
import threading

from moto.dynamodb.responses import DynamoHandler
from moto.server import main

_DYNAMODB = threading.Lock()
_call_action = DynamoHandler.call_action


def _serialised_call_action(self):
    with _DYNAMODB:
        return _call_action(self)


DynamoHandler.call_action = _serialised_call_action

if __name__ == "__main__":
    sys.argv[0] = "moto_server"
    sys.exit(main())
