-- Notifications sent and failed by month.
SELECT month,
       notifications_sent,
       notifications_failed,
       round(notification_fail_rate, 4) AS fail_rate
FROM gold.kpi_monthly
ORDER BY month
