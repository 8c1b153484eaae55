document.getElementById('app').textContent = 'seat-saga console';
