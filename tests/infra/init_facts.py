#!/usr/bin/env python3
"""Reads what `BERTH_AWS_INIT=1` made on a moto server and compares it with the template's facts
(from template_facts.py). Needs boto3 (moto's venv has it).

    init_facts.py MOTO_URL BUCKET TABLE QUEUE TEMPLATE_FACTS.json
"""
import json
import sys

import boto3

url, bucket, table, queue, facts_file = sys.argv[1:6]
kw = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
ddb, s3, sqs = boto3.client("dynamodb", **kw), boto3.client("s3", **kw), boto3.client("sqs", **kw)

t = ddb.describe_table(TableName=table)["Table"]
ttl = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
pitr = ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
pab = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
enc = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"]
rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
qurl = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
attrs = sqs.get_queue_attributes(QueueUrl=qurl, AttributeNames=["All"])["Attributes"]
redrive = json.loads(attrs["RedrivePolicy"])
live = {
    "table": {
        "keys": sorted((k["AttributeName"], k["KeyType"]) for k in t["KeySchema"]),
        "attributes": sorted((a["AttributeName"], a["AttributeType"]) for a in t["AttributeDefinitions"]),
        "billing": t.get("BillingModeSummary", {}).get("BillingMode"),
        "ttl": ttl.get("AttributeName"),
        "pitr": pitr["PointInTimeRecoveryStatus"] == "ENABLED",
    },
    "bucket": {
        "public_access_block": pab,
        "encryption": enc["SSEAlgorithm"],
        "abort_multipart_days": [r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] for r in rules if "AbortIncompleteMultipartUpload" in r],
        "expire_uploads_days": [r["Expiration"]["Days"] for r in rules
                                if (r.get("Filter", {}).get("Prefix") or r.get("Prefix")) == "uploads/" and "Expiration" in r],
    },
    "queue": {"max_receive_count": int(redrive["maxReceiveCount"]), "dead_letter_queue": bool(redrive.get("deadLetterTargetArn"))},
}
want = json.load(open(facts_file))
live = json.loads(json.dumps(live, sort_keys=True))
fails = 0
for section in sorted(want):
    for key in sorted(want[section]):
        w, g = want[section][key], live[section].get(key)
        if w == g:
            print(f"OK   {section}.{key}: {json.dumps(g)}")
        else:
            fails += 1
            print(f"FAIL {section}.{key}: template {json.dumps(w)}, BERTH_AWS_INIT made {json.dumps(g)}")
n = sum(len(v) for v in want.values())
print(f"{n - fails} passed, {fails} failed")
sys.exit(1 if fails else 0)
