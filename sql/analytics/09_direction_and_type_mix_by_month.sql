-- Direction (debit/credit) and type (channel) mix by month: counts, value and share of count.
SELECT month,
       direction,
       channel,
       count(*)                  AS tx_count,
       round(sum(amount_usd), 2) AS value_usd,
       round(count(*) / sum(count(*)) OVER (PARTITION BY month), 4) AS count_share
FROM gold.fact_transactions
GROUP BY month, direction, channel
ORDER BY month, direction, tx_count DESC
