-- Customer-months whose spend or transaction count lies more than 3 standard deviations above
-- the month's mean (z-score outliers), by month.
WITH stats AS (
    SELECT month,
           avg(spend_usd) AS mean_spend, stddev_samp(spend_usd) AS sd_spend,
           avg(tx_count)  AS mean_count, stddev_samp(tx_count)  AS sd_count
    FROM gold.customer_monthly_features
    GROUP BY month
)
SELECT f.month,
       count_if(s.sd_spend > 0 AND f.spend_usd > s.mean_spend + 3 * s.sd_spend) AS amount_outliers,
       count_if(s.sd_count > 0 AND f.tx_count > s.mean_count + 3 * s.sd_count)  AS count_outliers,
       round(max(f.spend_usd), 2) AS max_spend_usd,
       max(f.tx_count)            AS max_tx_count
FROM gold.customer_monthly_features f
JOIN stats s ON s.month = f.month
GROUP BY f.month
ORDER BY f.month
