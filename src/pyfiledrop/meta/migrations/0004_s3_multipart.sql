-- Object storage (--storage s3://...): the S3 multipart upload behind each upload in progress, and
-- the parts it has (chunk i is part i + 1), so any process can complete it from the books.
CREATE TABLE s3_multipart (
    upload_id    TEXT PRIMARY KEY,         -- uploads.id
    s3_upload_id TEXT NOT NULL,            -- S3's UploadId
    object_key   TEXT NOT NULL,
    created      REAL NOT NULL
);

CREATE TABLE s3_parts (
    upload_id   TEXT NOT NULL,
    part_number INTEGER NOT NULL,
    etag        TEXT NOT NULL,             -- as S3 answered, checked against the part MD5
    size        INTEGER NOT NULL,
    PRIMARY KEY (upload_id, part_number)
)
