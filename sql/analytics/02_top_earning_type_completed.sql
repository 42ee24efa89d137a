-- Which transaction type (channel) earns most from completed transactions (fees + FX margin).
SELECT channel,
       count(*)                        AS completed_count,
       round(sum(amount_usd), 2)       AS completed_value_usd,
       round(sum(fee_usd), 2)          AS fee_revenue_usd,
       round(sum(fx_margin_usd), 2)    AS fx_margin_usd,
       round(sum(revenue_usd), 2)      AS revenue_usd
FROM gold.fact_transactions
WHERE state = 'completed'
GROUP BY channel
ORDER BY revenue_usd DESC
