DROP TABLE fee_schedule;
