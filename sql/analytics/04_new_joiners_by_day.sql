-- New joiners by join day, and the transactions they made on or after that day in the month.
WITH joiners AS (
    SELECT customer_key, join_date
    FROM gold.dim_customer
    WHERE is_current AND customer_sk <> -1 AND join_date IS NOT NULL
)
SELECT j.join_date,
       count(DISTINCT j.customer_key)  AS new_customers,
       count(t.transaction_id)         AS their_transactions,
       round(coalesce(sum(t.amount_usd), 0), 2) AS their_value_usd
FROM joiners j
LEFT JOIN gold.fact_transactions t
       ON t.customer_key = j.customer_key
      AND t.month = date_format(j.join_date, 'yyyy-MM')
GROUP BY j.join_date
ORDER BY j.join_date
