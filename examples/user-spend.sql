CREATE DATABASE IF NOT EXISTS analytics;
CREATE TABLE IF NOT EXISTS analytics.user_spend (
  user_id      BIGINT      NOT NULL,
  window_start DATETIME(3) NOT NULL,
  window_end   DATETIME(3) NOT NULL,
  cnt          BIGINT      NOT NULL,
  total        BIGINT      NOT NULL,
  biggest      BIGINT      NOT NULL,
  PRIMARY KEY (user_id, window_start)
);
TRUNCATE TABLE analytics.user_spend;
