"""The S3 side of warehouse/tests/s3/e2e.sh, through boto3 (AWS's own client, nothing of
sipline's): make a bucket, download every object under a prefix to a folder, or print one.

    python objects.py create-bucket BUCKET
    python objects.py download BUCKET PREFIX FOLDER
    python objects.py cat BUCKET KEY

Endpoint and credentials from the standard AWS variables (AWS_ENDPOINT_URL, ...).
"""
import os
import sys

import boto3


def client():
    return boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                        region_name=os.environ.get("AWS_REGION", "us-east-1"))


def main(argv):
    if argv[1] == "create-bucket":
        client().create_bucket(Bucket=argv[2], CreateBucketConfiguration={
            "LocationConstraint": os.environ.get("AWS_REGION", "us-east-1")})
    elif argv[1] == "download":
        bucket, prefix, folder = argv[2], argv[3].rstrip("/") + "/", argv[4]
        s3 = client()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                target = os.path.join(folder, item["Key"][len(prefix):])
                os.makedirs(os.path.dirname(target), exist_ok=True)
                s3.download_file(bucket, item["Key"], target)
    elif argv[1] == "cat":
        body = client().get_object(Bucket=argv[2], Key=argv[3])["Body"].read()
        sys.stdout.write(body.decode())
    else:
        raise SystemExit(f"unknown command {argv[1]}")


if __name__ == "__main__":
    main(sys.argv)
