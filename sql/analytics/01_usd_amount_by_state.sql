-- Distribution of the USD amount by transaction state: count, total, mean and quartiles.
SELECT state,
       count(*)                                   AS tx_count,
       round(sum(amount_usd), 2)                  AS total_usd,
       round(avg(amount_usd), 2)                  AS mean_usd,
       round(percentile_approx(amount_usd, 0.25), 2) AS p25_usd,
       round(percentile_approx(amount_usd, 0.50), 2) AS median_usd,
       round(percentile_approx(amount_usd, 0.75), 2) AS p75_usd,
       round(max(amount_usd), 2)                  AS max_usd
FROM gold.fact_transactions
GROUP BY state
ORDER BY tx_count DESC
