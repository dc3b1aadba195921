#!/usr/bin/env python3
"""Prints, as JSON, what template.yaml says about the bucket, the table and the queues, in the
shape `init_facts.py` reads from a live (emulated) account. Needs cfn-lint (its YAML loader
understands the CloudFormation tags)."""
import json
import sys

from cfnlint.decode import decode_str

tpl, matches = decode_str(open(sys.argv[1]).read())
if tpl is None:
    sys.exit(f"cannot read the template: {matches}")
res = tpl["Resources"]
table = res["Metadata"]["Properties"]
bucket = res["Blobs"]["Properties"]
queue = res["Jobs"]["Properties"]
rules = bucket["LifecycleConfiguration"]["Rules"]
facts = {
    "table": {
        "keys": sorted((k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]),
        "attributes": sorted((a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]),
        "billing": table["BillingMode"],
        "ttl": table["TimeToLiveSpecification"]["AttributeName"],
        "pitr": table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
    },
    "bucket": {
        "public_access_block": bucket["PublicAccessBlockConfiguration"],
        "encryption": bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"],
        "abort_multipart_days": [r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] for r in rules if "AbortIncompleteMultipartUpload" in r],
        "expire_uploads_days": [r["ExpirationInDays"] for r in rules if r.get("Prefix") == "uploads/"],
    },
    "queue": {"max_receive_count": int(queue["RedrivePolicy"]["maxReceiveCount"]), "dead_letter_queue": True},
}
print(json.dumps(facts, sort_keys=True))
