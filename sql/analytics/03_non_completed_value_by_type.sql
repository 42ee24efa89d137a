-- Which transaction type carries the most USD value in transactions that did not complete.
SELECT channel,
       count(*)                   AS non_completed_count,
       round(sum(amount_usd), 2)  AS non_completed_value_usd
FROM gold.fact_transactions
WHERE state <> 'completed'
GROUP BY channel
ORDER BY non_completed_value_usd DESC
