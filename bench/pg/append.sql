\set r random(1, 1000)
SELECT count(*) FROM chat_append(ARRAY['room' || :r], ARRAY['u1'], ARRAY['hello there, a typical chat message'], ARRAY[NULL]::text[], ARRAY[false], ARRAY[false], ARRAY[NULL]::bigint[], ARRAY[NULL]::text[], 2000);
