#!/usr/bin/env python3
"""Lost updates under racing conditional writes on a DynamoDB endpoint (an emulator).

    python moto_race.py ENDPOINT [ROUNDS] [WORKERS] [PER_WORKER]

Each round puts a counter item with rev 0, then WORKERS threads (8) each increment it
PER_WORKER times (10) with the write Berth's DynamoDB adapter makes: an UpdateItem that sets
the value and bumps `rev`, under the condition `#rev = :expected`, retried on
ConditionalCheckFailed. On DynamoDB that condition is checked and the update applied
atomically, so the counter ends at WORKERS * PER_WORKER; every missing increment is an update
that was accepted and then overwritten. Prints one line per round and a total; exits 1 when any
update was lost. Needs boto3 (the moto venv has it).
"""
import sys
import threading
import time

import boto3
from botocore.config import Config


def main():
    endpoint = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    per_worker = int(sys.argv[4]) if len(sys.argv) > 4 else 10
    client = boto3.client(
        "dynamodb", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(max_pool_connections=workers * 2, retries={"max_attempts": 1}),
    )
    table = f"race-{int(time.time() * 1000)}"
    client.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
    )
    key = {"pk": {"S": "c"}, "sk": {"S": "n"}}
    want = workers * per_worker
    total_lost = 0
    t0 = time.monotonic()
    for r in range(rounds):
        client.put_item(TableName=table, Item={**key, "v": {"S": "0"}, "rev": {"N": "0"}})
        conflicts = [0] * workers
        errors = []

        def work(i):
            try:
                for _ in range(per_worker):
                    while True:
                        item = client.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
                        n, rev = int(item["v"]["S"]), item["rev"]["N"]
                        try:
                            client.update_item(
                                TableName=table, Key=key,
                                UpdateExpression="SET #v = :v, #rev = if_not_exists(#rev, :zero) + :one",
                                ConditionExpression="#rev = :expected",
                                ExpressionAttributeNames={"#v": "v", "#rev": "rev"},
                                ExpressionAttributeValues={":v": {"S": str(n + 1)}, ":zero": {"N": "0"},
                                                           ":one": {"N": "1"}, ":expected": {"N": rev}},
                            )
                            break
                        except client.exceptions.ConditionalCheckFailedException:
                            conflicts[i] += 1
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        got = int(client.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]["v"]["S"])
        lost = want - got
        total_lost += lost
        print(f"round {r + 1:2}: counter {got}/{want}, lost {lost}, conflicts {sum(conflicts)}"
              + (f", errors {errors[:2]}" if errors else ""), flush=True)
        if errors:
            sys.exit(2)
    client.delete_table(TableName=table)
    print(f"{rounds} rounds of {want} conditional increments in {time.monotonic() - t0:.1f} s: "
          f"{total_lost} lost updates")
    sys.exit(1 if total_lost else 0)


if __name__ == "__main__":
    main()
