from django.conf import settings


def site(request):
    return {
        "SERVICE_NAME": settings.SERVICE_NAME,
        "FUND_NAME": settings.FUND_NAME,
        "BRAND": settings.BRAND,
        "DEMO": settings.DEMO,
        "PASSWORD_MIN_LENGTH": settings.PASSWORD_MIN_LENGTH,
    }
