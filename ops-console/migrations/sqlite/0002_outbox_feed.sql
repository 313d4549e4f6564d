-- Receivers read their messages by destination, delivered or not, in order.
CREATE INDEX outbox_by_destination ON outbox (destination, id);
