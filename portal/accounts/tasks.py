from datetime import date

from django_tasks import task


@task()
def password_reset_process(nir13: str, birth_date: str, ip: str) -> str:
    from .reset import password_reset_process as process

    return process(nir13=nir13, birth_date=date.fromisoformat(birth_date), ip=ip)
