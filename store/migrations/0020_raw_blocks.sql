-- Packed raw blocks (issue 20): the packer moves the rows of raw partitions
-- into tables rawk_YYYYMMDDHHMM (created with their partitions' blocks, see
-- store/flowdb/rawpack.go), which a flowbox before this version would not
-- read: it would show the packed flows as missing. This version number
-- makes such a flowbox refuse the database instead. No table changes.
SELECT 1;
