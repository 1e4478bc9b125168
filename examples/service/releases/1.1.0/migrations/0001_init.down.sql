DROP INDEX trades_status;
DROP INDEX trades_user;
DROP TABLE trades;
DROP TABLE users;
