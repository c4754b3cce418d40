"""One way of writing a date and a time in every console page, in both languages (FORMAT_MODULE_PATH).

Django's own English and Chinese formats ("Dec. 8, 2026, 2:22 a.m.", "2026年12月8日 02:22") sat beside the
console's own "2026-12-08 02:22:51" on one page. Only display formats are set here; the input formats of
forms stay Django's for each language.
"""

# The console writes times as ISO 8601 does, in the site's time zone, to the second.
DATE_FORMAT = "Y-m-d"
DATETIME_FORMAT = "Y-m-d H:i:s"
SHORT_DATE_FORMAT = DATE_FORMAT
SHORT_DATETIME_FORMAT = DATETIME_FORMAT
TIME_FORMAT = "H:i:s"
